"""A LangChain response cache in SQLite under the home.

Keyed by LangChain's own prompt and ``llm_string`` (model, messages and every generation
parameter), so re-materializing unchanged inputs costs no tokens. Hits are marked in the
message's ``response_metadata`` so usage tracking can tell them from paid calls.

The cache is derived state: a file SQLite cannot read (truncated, not a database) is set aside as
``*.unreadable`` and started afresh with a warning (``rebuilt`` counts it), never failing a call.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import warnings
from pathlib import Path

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import dumps, loads

from reference_arch.common.atomic import set_aside


log = logging.getLogger(__name__)


def _masked(generations: RETURN_VAL_TYPE) -> list:
    """The generations with their text masked (``common.redaction``): the answer ``generate`` returns is
    masked, and its raw text is not kept on disk either. A hit returns it masked, which masking leaves as is."""
    from reference_arch.common.redaction import redact

    out = []
    for generation in generations:
        message = getattr(generation, "message", None)
        if message is not None and isinstance(message.content, str):
            message = message.model_copy(update={"content": redact(message.content)})
            generation = generation.model_copy(update={"message": message, "text": message.content})
        elif isinstance(getattr(generation, "text", None), str):
            generation = generation.model_copy(update={"text": redact(generation.text)})
        out.append(generation)
    return out


class SQLiteResponseCache(BaseCache):
    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.Lock()
        self.rebuilt = 0
        try:
            self._create()
        except sqlite3.DatabaseError as err:
            self._start_over(err)

    def _create(self) -> None:
        with self._connect() as con:
            con.execute("CREATE TABLE IF NOT EXISTS responses (prompt TEXT, llm TEXT, value TEXT, PRIMARY KEY (prompt, llm))")
            con.execute("SELECT count(*) FROM responses").fetchone()

    def _start_over(self, err: Exception) -> None:
        log.warning("the LLM response cache %s cannot be read (%s); starting an empty one", self.path, err)
        set_aside(self.path)
        self.rebuilt += 1
        self._create()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        try:
            with self._lock, self._connect() as con:
                row = con.execute("SELECT value FROM responses WHERE prompt = ? AND llm = ?",
                                  (prompt, llm_string)).fetchone()
            if row is None:
                return None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # `loads` is marked beta
                generations = loads(row[0], allowed_objects="core")
        except sqlite3.DatabaseError as err:  # damaged since it was opened: a miss, and a fresh file
            self._start_over(err)
            return None
        except ValueError as err:  # an entry that no longer loads: a miss
            log.warning("the LLM response cache %s holds an unreadable entry (%s); calling the model", self.path, err)
            return None
        for generation in generations:
            generation.message.response_metadata["cache_hit"] = True
        return generations

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        try:
            with self._lock, self._connect() as con:
                con.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)",
                            (prompt, llm_string, dumps(_masked(return_val))))
        except sqlite3.DatabaseError as err:
            self._start_over(err)

    def clear(self, **kwargs) -> None:
        with self._lock, self._connect() as con:
            con.execute("DELETE FROM responses")
