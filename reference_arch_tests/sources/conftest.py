"""Local HTTP servers speaking the GitHub REST API and the Slack Web API, and a DuckDB loader.

The fakes keep only what the sources rely on: GitHub's ``Link`` header pagination, ``since`` on
``updated_at``, bearer auth (401 ``Bad credentials``), 404 for unknown repos; Slack's cursor pagination
(``response_metadata.next_cursor``), ``oldest``/``latest`` (exclusive unless ``inclusive``), thread replies with the parent
first, ``ok: false`` errors. Failures can be queued per path (``server.fail(path_prefix, status, headers)``)
and every request is recorded.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

GITHUB_TOKEN = "ghp_test_token_do_not_log_1234"
SLACK_TOKEN = "xoxb-test-token-do-not-log-5678"
PAGE = 2  # both fakes serve two records per page so a handful of records spans several pages


class FakeApi:
    """A threaded HTTP server on 127.0.0.1 (port 0) that hands each GET to ``route(path, query, headers)``."""

    def __init__(self, route):
        self.route = route
        self.requests: list[dict] = []
        self.failures: list[tuple[str, int, dict, dict]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                api.requests.append({"path": parts.path, "query": query, "headers": dict(self.headers)})
                status, headers, body = api._answer(parts.path, query, self.headers)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, path_prefix: str, status: int, headers: dict | None = None, body: dict | None = None) -> None:
        """Answer the next request under ``path_prefix`` with this error (queued, each used once)."""
        self.failures.append((path_prefix, status, headers or {}, body or {"message": "injected failure"}))

    def _answer(self, path, query, headers):
        for index, (prefix, status, fail_headers, body) in enumerate(self.failures):
            if path.startswith(prefix):
                del self.failures[index]
                return status, fail_headers, body
        return self.route(path, query, headers)

    def paths(self, prefix: str = "") -> list[str]:
        return [r["path"] for r in self.requests if r["path"].startswith(prefix)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


T0 = datetime(2026, 5, 4, 9, 0, tzinfo=timezone.utc)


class FakeGitHub:
    """GitHub's issues and issue-comments endpoints over an in-memory repository."""

    def __init__(self):
        self.issues: dict[str, list[dict]] = {"acme/widgets": []}
        self.comments: dict[tuple[str, int], list[dict]] = {}
        self.api = FakeApi(self.route)
        self.url = self.api.url
        self._ids = 5000

    def add_issue(self, number: int, day: int, title: str, *, repo="acme/widgets", pr=False, replies=(), body="b"):
        """An issue created ``day`` days after T0, with ``replies``: (login, association, user type, body)."""
        created = T0 + timedelta(days=day)
        issue = {"id": 100_000 + number, "number": number, "title": title, "body": body, "state": "open",
                 "user": {"login": "reporter", "type": "User"}, "author_association": "NONE",
                 "labels": [{"name": "bug"}], "created_at": iso(created), "updated_at": iso(created),
                 "comments": 0, "html_url": f"https://github.com/{repo}/issues/{number}"}
        if pr:
            issue["pull_request"] = {"url": f"https://api.github.com/repos/{repo}/pulls/{number}"}
        self.issues[repo].append(issue)
        for login, association, user_type, text in replies:
            self.comment(repo, number, login, association, user_type, text)
        return issue

    def comment(self, repo, number, login, association, user_type, text, at: datetime | None = None):
        """A comment on issue ``number``, an hour after its last update unless ``at`` says when."""
        issue = next(i for i in self.issues[repo] if i["number"] == number)
        self._ids += 1
        when = at or datetime.fromisoformat(issue["updated_at"].replace("Z", "+00:00")) + timedelta(hours=1)
        self.comments.setdefault((repo, number), []).append(
            {"id": self._ids, "issue_url": f"https://api.github.com/repos/{repo}/issues/{number}",
             "user": {"login": login, "type": user_type}, "author_association": association, "body": text,
             "created_at": iso(when), "updated_at": iso(when)})
        issue["comments"] += 1
        issue["updated_at"] = iso(when)

    def route(self, path, query, headers):
        if headers.get("Authorization") != f"Bearer {GITHUB_TOKEN}":
            return 401, {}, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
        parts = path.strip("/").split("/")
        if len(parts) < 4 or parts[0] != "repos" or f"{parts[1]}/{parts[2]}" not in self.issues:
            return 404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
        repo = f"{parts[1]}/{parts[2]}"
        if parts[3:] == ["issues"]:
            items = sorted(self.issues[repo], key=lambda i: i["updated_at"])
            if query.get("since"):
                items = [i for i in items if i["updated_at"] >= query["since"]]
        elif len(parts) == 6 and parts[3] == "issues" and parts[5] == "comments":
            items = self.comments.get((repo, int(parts[4])), [])
        else:
            return 404, {}, {"message": "Not Found"}
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * PAGE: page * PAGE]
        headers = {}
        if page * PAGE < len(items):
            next_query = urlencode({**query, "page": page + 1})
            headers["Link"] = f'<{self.url}{path}?{next_query}>; rel="next", <{self.url}{path}?page=99>; rel="last"'
        return 200, headers, chunk


class FakeSlack:
    """Slack's conversations.list/history/replies and users.list over an in-memory workspace."""

    def __init__(self):
        self.channels = [
            {"id": "C1", "name": "general", "is_member": True, "created": 1777000000, "topic": {"value": "hello"},
             "purpose": {"value": "all"}, "num_members": 3},
            {"id": "C2", "name": "help", "is_member": True, "created": 1777000100, "topic": {"value": ""},
             "purpose": {"value": "questions"}, "num_members": 3},
            {"id": "C3", "name": "random", "is_member": False, "created": 1777000200},
        ]
        self.users = [{"id": f"U{i}", "name": f"user{i}", "real_name": f"User {i}", "profile": {"display_name": f"u{i}"}}
                      for i in range(1, 6)]
        self.messages: dict[str, list[dict]] = {"C1": [], "C2": [], "C3": []}
        self.api = FakeApi(self.route)
        self.url = self.api.url
        self.base = 1778000000  # 2026-05-05T16:53:20Z

    def post(self, channel: str, offset: int, text: str, *, user="U1", thread: str | None = None) -> str:
        """Post ``offset`` seconds after ``self.base``; a reply when ``thread`` (the parent ts) is given."""
        ts = f"{self.base + offset}.000100"
        message = {"type": "message", "user": user, "text": text, "ts": ts}
        if thread:
            message["thread_ts"] = thread
            parent = next(m for m in self.messages[channel] if m["ts"] == thread)
            parent.update(thread_ts=thread, reply_count=parent.get("reply_count", 0) + 1, latest_reply=ts)
        self.messages[channel].append(message)
        return ts

    def route(self, path, query, headers):
        if headers.get("Authorization") != f"Bearer {SLACK_TOKEN}":
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        method = path.strip("/")
        if method == "conversations.list":
            return self._page(self.channels, "channels", query)
        if method == "users.list":
            return self._page(self.users, "members", query)
        if method in ("conversations.history", "conversations.replies"):
            if query.get("channel") not in self.messages:
                return 200, {}, {"ok": False, "error": "channel_not_found"}
            items = self.messages[query["channel"]]
            if method == "conversations.history":
                items = [m for m in items if m.get("thread_ts") in (None, m["ts"])]
            else:
                items = [m for m in items if m.get("thread_ts") == query["ts"] or m["ts"] == query["ts"]]
            low, high = float(query.get("oldest", 0)), float(query.get("latest", 9e12))
            if query.get("inclusive") == "true":
                window = [m for m in items if low <= float(m["ts"]) <= high]
            else:
                window = [m for m in items if low < float(m["ts"]) < high]
            if method == "conversations.replies":  # the parent always comes first
                parent = [m for m in items if m["ts"] == query["ts"]]
                window = parent + [m for m in window if m["ts"] != query["ts"]]
            else:
                window = sorted(window, key=lambda m: float(m["ts"]), reverse=True)
            return self._page(window, "messages", query)
        return 200, {}, {"ok": False, "error": "unknown_method"}

    def _page(self, items, key, query):
        start = int(query.get("cursor") or 0)
        limit = min(int(query.get("limit", 100)), PAGE)
        chunk = items[start:start + limit]
        more = start + limit < len(items)
        return 200, {}, {"ok": True, key: chunk, "has_more": more,
                         "response_metadata": {"next_cursor": str(start + limit) if more else ""}}


@pytest.fixture
def github_api():
    fake = FakeGitHub()
    yield fake
    fake.api.close()


@pytest.fixture
def slack_api():
    fake = FakeSlack()
    yield fake
    fake.api.close()


class Loader:
    """Runs sources into one DuckDB file through dlt pipelines kept under a temporary directory."""

    def __init__(self, root: Path):
        self.root = root
        self.db = root / "warehouse.duckdb"

    def run(self, source, name: str = "test", dataset: str = "raw"):
        import dlt

        pipeline = dlt.pipeline(pipeline_name=name, pipelines_dir=str(self.root / "pipelines"),
                                destination=dlt.destinations.duckdb(str(self.db)), dataset_name=dataset)
        pipeline.run(source)
        return pipeline

    def rows(self, sql: str) -> list[tuple]:
        import duckdb

        with duckdb.connect(str(self.db), read_only=True) as con:
            return con.execute(sql).fetchall()


def loaded(pipeline, table: str) -> int:
    """Rows of ``table`` that the pipeline's last run extracted (0 when none)."""
    return pipeline.last_trace.last_normalize_info.row_counts.get(table, 0)


@pytest.fixture
def loader(tmp_path) -> Loader:
    return Loader(tmp_path)


class Sleeps(list):
    """A ``sleep`` that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def no_sleep() -> Sleeps:
    return Sleeps()


@pytest.fixture
def all_logs(caplog, monkeypatch):
    """Every log line at DEBUG, dlt's included (its logger does not propagate to the root logger)."""
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "DEBUG")  # dlt sets its level from this when a pipeline runs
    dlt_logger = logging.getLogger("dlt")
    level = dlt_logger.level
    dlt_logger.addHandler(caplog.handler)
    dlt_logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    dlt_logger.removeHandler(caplog.handler)
    dlt_logger.setLevel(level)


def error_text(exc: BaseException) -> str:
    """The messages of an exception and its causes (dlt wraps extraction errors)."""
    parts = []
    while exc is not None and len(parts) < 10:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)
