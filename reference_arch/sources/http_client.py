"""HTTP for the API sources: dlt's ``RESTClient`` (pagination) over a session that retries.

The session retries what is transient (429, 5xx, timeouts, dropped connections, GitHub's 403 when its
rate limit is spent), waiting what the server asks (``Retry-After``, ``X-RateLimit-Reset``) or
backing off exponentially, always bounded. Anything else, or a transient error that outlasts the
retries, raises :class:`ApiError` with a message naming the service, the status and what to check.
Tokens travel through ``BearerTokenAuth`` (applied when the request is prepared), so dlt's request
logs never contain them, and every ``ApiError`` is scrubbed of the configured secrets (a server may
quote the presented token back). Each attempt is bounded by ``timeout`` (connect and read), the whole
call by ``max_attempts`` and ``max_wait``; a call that timed out says so.
"""

from __future__ import annotations

import logging
import time
from email.utils import parsedate_to_datetime
from typing import Callable

import requests

log = logging.getLogger(__name__)

TRANSIENT_EXCEPTIONS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

HINTS = {
    401: "the token is missing, invalid or expired",
    403: "the token lacks a permission this request needs",
    404: "the resource does not exist or the token cannot see it",
}


class ApiError(RuntimeError):
    """A request failed for good; ``status`` is the HTTP status (None when the server was unreachable)."""

    def __init__(self, message: str, status: int | None = None, secrets: tuple = ()):
        from reference_arch.common.secrets import scrub

        super().__init__(scrub(message, *secrets))
        self.status = status


def _seconds_until(header: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date."""
    if not header:
        return None
    header = header.strip()
    if header.replace(".", "", 1).isdigit():
        return float(header)
    try:
        return parsedate_to_datetime(header).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


def rate_limit_wait(response: requests.Response) -> float | None:
    """How long the server asks us to wait, or None when it does not say."""
    wait = _seconds_until(response.headers.get("Retry-After"))
    if wait is None and response.headers.get("X-RateLimit-Remaining") == "0":
        reset = response.headers.get("X-RateLimit-Reset")  # epoch seconds (GitHub)
        if reset and reset.isdigit():
            wait = int(reset) - time.time() + 1
    return None if wait is None else max(0.0, wait)


def is_transient(response: requests.Response) -> bool:
    if response.status_code == 429 or response.status_code >= 500:
        return True
    # GitHub answers 403 (not 429) when the primary or secondary rate limit is spent.
    return response.status_code == 403 and rate_limit_wait(response) is not None


class RetryingSession(requests.Session):
    """A ``requests.Session`` whose ``send`` retries transient failures, bounded in attempts and wait."""

    def __init__(self, service: str, *, max_attempts: int = 5, backoff: float = 1.0, max_wait: float = 120.0,
                 timeout: float = 30.0, hint: Callable[[requests.Response], str | None] | None = None,
                 sleep: Callable[[float], None] = time.sleep, secrets: tuple = ()):
        super().__init__()
        self.service = service
        self.secrets = secrets  # scrubbed from errors on top of the environment's (a token given as config)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_wait = max_wait
        self.timeout = timeout
        self.hint = hint
        self.sleep = sleep
        self.raise_for_status = False  # tells dlt's RESTClient that its own hook raises

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:  # requests passes timeout=None itself: never wait forever
            kwargs["timeout"] = self.timeout
        where = f"{request.method} {_path(request.url)}"
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = super().send(request, **kwargs)
            except TRANSIENT_EXCEPTIONS as exc:
                if attempt == self.max_attempts:
                    what = (f"timed out ({where}): no answer within {self.timeout:g} s"
                            if isinstance(exc, requests.Timeout) else f"unreachable ({where})")
                    # from None: the exception's text holds the request, its URL and query too.
                    raise ApiError(f"{self.service} {what} after {attempt} attempts: {type(exc).__name__}") from None
                self._wait(self.backoff * 2 ** (attempt - 1), attempt, where, type(exc).__name__)
                continue
            except requests.HTTPError as exc:  # raised by dlt's RESTClient response hook
                if exc.response is None:
                    raise
                response = exc.response
            if response.status_code < 400:
                return response
            if not is_transient(response) or attempt == self.max_attempts:
                raise self._error(response, where, attempt)
            asked = rate_limit_wait(response)
            if asked is not None and asked > self.max_wait:
                raise ApiError(f"{self.service} rate limit exhausted ({where}): the server asks to wait "
                               f"{asked:.0f}s, more than the {self.max_wait:.0f}s allowed; retry later",
                               response.status_code, self.secrets)
            delay = asked if asked is not None else self.backoff * 2 ** (attempt - 1)
            self._wait(delay, attempt, where, f"HTTP {response.status_code}")
        raise AssertionError("unreachable")

    def _wait(self, delay: float, attempt: int, where: str, why: str) -> None:
        delay = min(delay, self.max_wait)
        log.warning("%s %s: %s, retry %d/%d in %.1fs", self.service, where, why, attempt, self.max_attempts - 1,
                    delay)
        self.sleep(delay)

    def _error(self, response: requests.Response, where: str, attempts: int) -> ApiError:
        status = response.status_code
        detail = _api_message(response)
        hint = (self.hint(response) if self.hint else None) or HINTS.get(status)
        text = f"{self.service} API error {status} {response.reason or ''}".rstrip() + f" for {where}"
        if detail:
            text += f": {detail}"
        if hint:
            text += f" ({hint})"
        if attempts > 1:
            text += f" after {attempts} attempts"
        return ApiError(text, status, self.secrets)


def _path(url: str) -> str:
    """The URL without scheme, host and query (queries may carry cursors; never tokens, but keep logs short)."""
    from urllib.parse import urlsplit

    return urlsplit(url).path or "/"


def _api_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return (response.text or "")[:200].strip()
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or "")[:200]
    return ""


def rest_client(base_url: str, service: str, *, token: str | None = None, paginator=None, data_selector=None,
                headers: dict | None = None, **session_options):
    """dlt's ``RESTClient`` over a :class:`RetryingSession`, with bearer auth when a token is given."""
    from dlt.sources.helpers.rest_client import RESTClient
    from dlt.sources.helpers.rest_client.auth import BearerTokenAuth

    return RESTClient(base_url=base_url, headers=headers, auth=BearerTokenAuth(token) if token else None,
                      paginator=paginator, data_selector=data_selector,
                      session=RetryingSession(service, secrets=(token,) if token else (), **session_options))
