"""A tiny GitHub export written in the test, and a tiny chat-sized model.

The export is the REST API's JSON (``issues.json`` and ``comments.json`` under ``owner/repo/``):
good Q&A in January and March 2026, nothing in February, and one of each bad case: an unanswered
issue, a bot-only answer, an empty body, a pull request, a question asked again, an empty
maintainer reply followed by a real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = "acme/widgets"
MAINTAINERS = [("ada", "OWNER"), ("bob", "MEMBER"), ("cy", "COLLABORATOR")]
TOPICS = ["install", "config", "cache", "export", "plugins", "logging", "timeouts", "retries", "themes", "auth",
          "proxy", "search", "upload", "sync", "locale", "fonts", "charts", "tables", "alerts", "backup"]


class ExportWriter:
    def __init__(self, root: Path):
        self.root = root
        self.issues: list[dict] = []
        self.comments: list[dict] = []
        self._next = 1000

    def _id(self) -> int:
        self._next += 1
        return self._next

    def issue(self, title: str, body: str, created: str, *, pull_request: bool = False) -> int:
        number = len(self.issues) + 1
        issue = {"id": self._id(), "number": number, "title": title, "body": body, "state": "closed",
                 "user": {"login": "user", "type": "User"}, "author_association": "NONE", "labels": [],
                 "comments": 0, "created_at": created, "updated_at": created, "closed_at": None,
                 "html_url": f"https://github.com/{REPO}/issues/{number}"}
        if pull_request:
            issue["pull_request"] = {"url": "x"}
        self.issues.append(issue)
        return number

    def reply(self, number: int, body: str, created: str, login: str = "ada", association: str = "OWNER",
              user_type: str = "User") -> None:
        self.issues[number - 1]["comments"] += 1
        self.comments.append({"id": self._id(), "body": body, "created_at": created, "updated_at": created,
                              "user": {"login": login, "type": user_type}, "author_association": association,
                              "issue_url": f"https://api.github.com/repos/{REPO}/issues/{number}",
                              "html_url": f"https://github.com/{REPO}/issues/{number}#c"})

    def write(self) -> Path:
        folder = self.root / REPO
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "issues.json").write_text(json.dumps(self.issues))
        (folder / "comments.json").write_text(json.dumps(self.comments))
        return self.root


def write_tiny_export(root: Path, good: int = 20) -> Path:
    """``good`` answered issues (January and March 2026) plus one of each bad case."""
    export = ExportWriter(root)
    for i in range(good):
        month = "01" if i % 2 == 0 else "03"
        created = f"2026-{month}-{(i % 27) + 1:02d}T10:00:00Z"
        topic = TOPICS[i % len(TOPICS)]
        n = export.issue(f"How to set {topic}?", f"Where do I set {topic} {i}?", created)
        export.reply(n, f"+1 same for {topic}", created.replace("T10", "T11"), login="visitor", association="NONE")
        login, association = MAINTAINERS[i % len(MAINTAINERS)]
        export.reply(n, f"> Where do I set {topic}?\nGreat question! Set {topic} in widgets.toml.",
                     created.replace("T10", "T12"), login=login, association=association)
    n = export.issue("Crash on start", "It crashes.", "2026-01-05T09:00:00Z")  # no qualifying answer
    export.reply(n, "me too", "2026-01-05T10:00:00Z", login="visitor", association="CONTRIBUTOR")
    n = export.issue("Stale?", "Any news?", "2026-01-06T09:00:00Z")  # only a bot answers
    export.reply(n, "This issue is stale.", "2026-01-06T10:00:00Z", login="stale[bot]", association="MEMBER",
                 user_type="Bot")
    n = export.issue("Empty", "  <!-- fill in the template -->  ", "2026-01-07T09:00:00Z")  # empty body
    export.reply(n, "Please fill in the template.", "2026-01-07T10:00:00Z")
    n = export.issue("Add feature", "This PR adds it.", "2026-01-08T09:00:00Z", pull_request=True)
    export.reply(n, "Thanks!", "2026-01-08T10:00:00Z")
    n = export.issue("How to set install?", "Where do I set install 0?", "2026-03-28T09:00:00Z")  # asked again
    export.reply(n, "Same as before.", "2026-03-28T10:00:00Z")
    n = export.issue("Dark mode", "How do I turn on dark mode?", "2026-03-20T09:00:00Z")  # empty, then real reply
    export.reply(n, "> How do I turn on dark mode?", "2026-03-20T10:00:00Z", login="bob", association="MEMBER")
    export.reply(n, "Happy to help! Use --theme dark.", "2026-03-20T11:00:00Z", login="bob", association="MEMBER")
    return export.write()


TINY_BASE = "registry:code-lm@1"  # the tiny chat model, as registry_with_base publishes it


@pytest.fixture
def github_export(tmp_path, monkeypatch) -> Path:
    root = write_tiny_export(tmp_path / "export")
    monkeypatch.setenv("REFERENCE_ARCH_GITHUB_EXPORT", str(root))
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    return root


@pytest.fixture(scope="session")
def chat_model_dir(tmp_path_factory) -> Path:
    """The conftest's tiny random model with room for a grounded chat example (2048 positions: its tiny
    vocabulary spends about a token a character)."""
    from reference_arch.testkit.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("chat-model"), n_positions=2048)


@pytest.fixture
def registry_with_base(tmp_home, chat_model_dir):
    """The temporary registry holding the tiny chat-sized model as ``code-lm`` (what pretrain publishes), the
    base of the plumbing tests (``TINY_BASE``); tests of what tuning does use the packaged model, the default."""
    from reference_arch.common.registry import ModelRegistry

    registry = ModelRegistry()
    registry.publish("code-lm", chat_model_dir, {"kind": "test"})
    return registry
