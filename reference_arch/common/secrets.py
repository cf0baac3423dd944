"""The secrets the project reads from the environment, and scrubbing them out of error text.

Servers quote what they were sent: OpenAI's 401 says "Incorrect API key provided: sk-...", and a
proxy may echo the ``Authorization`` header. Every client path (embeddings, chat, fine-tuning,
GitHub/Slack HTTP, Weaviate) passes error text through :func:`scrub`, or raises through
:func:`scrubbed`, before it is printed, logged or stored in Dagster's run database.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Iterator

# One registry: the environment variables that hold secrets. Names ending like a credential count
# too (a dlt destination password, DAGSTER_POSTGRES_PASSWORD, a user's own *_TOKEN).
SECRET_ENV_NAMES = ("OPENAI_API_KEY", "GITHUB_TOKEN", "SLACK_BOT_TOKEN", "WEAVIATE_API_KEY", "HF_TOKEN",
                    "DAGSTER_POSTGRES_PASSWORD")
SECRET_NAME_PATTERN = re.compile(r"(_API_KEY|_TOKEN|_SECRET|_PASSWORD|__CREDENTIALS|_ACCESS_KEY)$")
MIN_SECRET_CHARS = 8  # shorter values ("k", "not-needed" is 10) are not keys, and replacing them mangles text
REDACTED = "[redacted]"


def secret_env_names() -> list[str]:
    """The registered names plus every set variable whose name ends like a credential."""
    return sorted(set(SECRET_ENV_NAMES) | {n for n in os.environ if SECRET_NAME_PATTERN.search(n)})


def secret_values(*extra: str | None) -> list[str]:
    """The configured secrets (environment and ``extra``, e.g. a key given as resource config), longest first."""
    # A dg.EnvVar outside a run is the variable's *name* (a str); its value is what may leak.
    extra = tuple(v.get_value() if hasattr(v, "get_value") else v for v in extra)
    values = {os.environ.get(name) for name in secret_env_names()} | set(extra)
    return sorted((v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_CHARS), key=len, reverse=True)


def scrub(text: object, *extra: str | None) -> str:
    """``text`` with every configured secret replaced by ``[redacted]``."""
    text = str(text)
    for value in secret_values(*extra):
        text = text.replace(value, REDACTED)
    return text


def _chain_text(err: BaseException) -> str:
    """The text of an exception and every exception chained to it (what a traceback would show)."""
    parts, seen = [], set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        parts += [str(err), repr(err.args)]
        err = err.__cause__ or err.__context__
    return "\n".join(parts)


@contextlib.contextmanager
def scrubbed(*extra: str | None, error: type[Exception] = RuntimeError) -> Iterator[None]:
    """Let exceptions through unchanged unless their text (or a chained exception's) holds a
    secret; those are re-raised as ``error("<type>: <scrubbed message>")`` with no chained cause,
    since Dagster stores a failure's whole chain."""
    try:
        yield
    except Exception as err:
        values = secret_values(*extra)
        text = _chain_text(err)
        if any(v in text for v in values):
            raise error(scrub(f"{type(err).__name__}: {err}", *extra)) from None
        raise
