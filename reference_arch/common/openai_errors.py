"""The ``openai`` client's errors as one line a user can act on, never carrying the key.

Shared by the chat (``llm.py``) and embeddings (``embeddings.py``) resources: each call runs
inside :func:`openai_errors_explained`, which names the server, says whether it refused the key,
timed out, could not be reached or answered an error status, and drops the client's exception
(its text may quote the key back; Dagster would store it with the failure).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from reference_arch.common.secrets import scrub, scrubbed


def _server_message(err, key: Optional[str]) -> str:
    """The server's own error message (``{"error": {"message": ...}}``), scrubbed and short."""
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        body = body.get("error", body)
        body = body.get("message") if isinstance(body, dict) else body
    return scrub(body or "", key)[:200] if isinstance(body, str) else ""


@contextlib.contextmanager
def openai_errors_explained(error: type[Exception], *, what: str = "", where: Optional[str], model: str,
                            timeout: float, max_retries: int, key: Optional[str] = None) -> Iterator[None]:
    """Re-raise the client's errors as ``error("<what>: <one line>")`` (``what``: which call, optional);
    ``where`` is the base URL (None: api.openai.com), ``timeout`` and ``max_retries`` what the client was built with."""
    try:
        yield
    except error:
        raise
    except Exception as err:  # noqa: BLE001 - translated below, scrubbed and re-raised otherwise
        import openai

        where = where or "api.openai.com"
        attempts = f"{max_retries + 1} attempt{'s' if max_retries else ''}"
        line = None
        if isinstance(err, (openai.AuthenticationError, openai.PermissionDeniedError)):
            line = (f"the OpenAI-compatible server at {where} refused the API key (HTTP {err.status_code}); "
                    "check OPENAI_API_KEY")
        elif isinstance(err, openai.NotFoundError):
            line = f"model {model!r} not found at {where} (HTTP 404)"
        elif isinstance(err, openai.APITimeoutError):  # before APIConnectionError, its base class
            line = (f"the OpenAI-compatible server at {where} timed out: no answer within {timeout:g} s, "
                    f"{attempts} (raise the resource's timeout or max_retries for a slow server)")
        elif isinstance(err, openai.APIConnectionError):
            line = f"cannot reach the OpenAI-compatible server at {where} ({attempts})"
        elif isinstance(err, openai.APIStatusError):
            detail = _server_message(err, key)
            line = f"the server at {where} answered HTTP {err.status_code}" + (f": {detail}" if detail else "") + (
                f" ({attempts})" if err.status_code == 429 or err.status_code >= 500 else "")
        if line:
            raise error(f"{what}: {line}" if what else line) from None
        with scrubbed(key, error=error):
            raise
