"""A LangChain response cache in SQLite under the home.

Keyed by LangChain's own prompt and ``llm_string`` (model, messages and every generation
parameter), so re-materializing unchanged inputs costs no tokens. Hits are marked in the
message's ``response_metadata`` so usage tracking can tell them from paid calls.
"""

from __future__ import annotations

import sqlite3
import threading
import warnings
from pathlib import Path

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import dumps, loads


class SQLiteResponseCache(BaseCache):
    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.Lock()
        with self._connect() as con:
            con.execute("CREATE TABLE IF NOT EXISTS responses (prompt TEXT, llm TEXT, value TEXT, PRIMARY KEY (prompt, llm))")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        with self._lock, self._connect() as con:
            row = con.execute("SELECT value FROM responses WHERE prompt = ? AND llm = ?", (prompt, llm_string)).fetchone()
        if row is None:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # `loads` is marked beta
            generations = loads(row[0], allowed_objects="core")
        for generation in generations:
            generation.message.response_metadata["cache_hit"] = True
        return generations

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        with self._lock, self._connect() as con:
            con.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", (prompt, llm_string, dumps(list(return_val))))

    def clear(self, **kwargs) -> None:
        with self._lock, self._connect() as con:
            con.execute("DELETE FROM responses")
