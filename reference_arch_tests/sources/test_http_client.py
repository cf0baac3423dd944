"""The retrying session under the API sources: what it retries, how long it waits, what it reports."""

from __future__ import annotations

import socket
import time
from email.utils import formatdate

import pytest
import requests

from reference_arch.sources.http_client import ApiError, RetryingSession, rate_limit_wait

from .conftest import FakeApi, Sleeps


def response(status: int, headers: dict) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers)
    return r


def test_waits_come_from_the_server():
    assert rate_limit_wait(response(429, {"Retry-After": "12"})) == 12
    http_date = formatdate(time.time() + 60, usegmt=True)
    assert 55 <= rate_limit_wait(response(503, {"Retry-After": http_date})) <= 61
    reset = str(int(time.time()) + 100)
    assert 95 <= rate_limit_wait(response(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})) <= 102
    assert rate_limit_wait(response(403, {"X-RateLimit-Remaining": "17"})) is None


def test_unreachable_server_is_retried_then_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    sleeps = Sleeps()
    session = RetryingSession("Example", max_attempts=3, backoff=0.5, sleep=sleeps, timeout=2)
    with pytest.raises(ApiError, match="Example unreachable .* after 3 attempts") as failure:
        session.get(f"http://127.0.0.1:{port}/v1/things?token=secret")
    assert sleeps == [0.5, 1.0] and failure.value.status is None
    assert "secret" not in str(failure.value)


def test_errors_name_the_status_message_and_hint():
    api = FakeApi(lambda path, query, headers: (404, {}, {"message": "Not Found"}))
    try:
        session = RetryingSession("Example", sleep=Sleeps(), hint=lambda r: "check the name")
        with pytest.raises(ApiError) as failure:
            session.get(f"{api.url}/repos/a/b")
        assert str(failure.value) == "Example API error 404 Not Found for GET /repos/a/b: Not Found (check the name)"
        assert failure.value.status == 404
    finally:
        api.close()
