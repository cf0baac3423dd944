"""The GitHub source's record shape: REST issue and comment objects as rows, and the marker row that
replaces an issue's comments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reference_arch.common import settings
from reference_arch.common.settings import SAMPLES_DIR
from reference_arch.sources.export_files import SkipStats, existing_dir, require, to_iso
from reference_arch.sources.github.settings import EXPORT_ENV


def default_export_path() -> Path:
    return Path(settings.value("github_export") or SAMPLES_DIR / "github")


def github_export_path(export_path: str | Path | None = None) -> Path:
    """The export folder that offline mode reads, or ``FileNotFoundError`` naming it (check it before a run)."""
    return existing_dir(export_path or default_export_path(), "GitHub export", EXPORT_ENV)


def is_bot(login: str | None, user_type: str | None) -> bool:
    return user_type == "Bot" or bool(login and login.endswith("[bot]"))


def _ids_ok(raw: dict, names: tuple[str, ...], where: str, stats: SkipStats) -> bool:
    bad = [name for name in names if not isinstance(raw.get(name), int) or isinstance(raw.get(name), bool)]
    if bad:
        stats.skip("bad_id", where, ", ".join(f"{name}={raw.get(name)!r}"[:40] for name in bad))
    return not bad


def _user(raw: dict) -> dict:
    user = raw.get("user")
    return user if isinstance(user, dict) else {}


def _times(raw: dict, names: tuple[str, ...], where: str, stats: SkipStats) -> dict | None:
    try:
        return {name: to_iso(raw.get(name)) for name in names}
    except (TypeError, ValueError) as exc:
        stats.skip("bad_timestamp", where, str(exc)[:80])
        return None


def shape_issue(raw: Any, repo: str, where: str, stats: SkipStats) -> dict | None:
    """The ``issues`` row for one REST issue object, or None (counted) when it is unusable."""
    if not require(raw, ("id", "number", "title", "created_at", "updated_at"), where, stats):
        return None
    if not _ids_ok(raw, ("id", "number"), where, stats):
        return None
    times = _times(raw, ("created_at", "updated_at", "closed_at"), where, stats)
    if times is None:
        return None
    user = _user(raw)
    labels = raw.get("labels") if isinstance(raw.get("labels"), list) else []
    labels = [label.get("name") if isinstance(label, dict) else str(label) for label in labels]
    count = raw.get("comments")
    return {
        "id": raw["id"],
        "number": raw["number"],
        "repo": repo,
        "title": str(raw["title"]),
        "body": _text(raw.get("body")),
        "state": raw.get("state"),
        "state_reason": raw.get("state_reason"),
        "user_login": user.get("login"),
        "user_type": user.get("type"),
        "author_association": raw.get("author_association"),
        "labels": labels,
        "comment_count": count if isinstance(count, int) else len(count) if isinstance(count, list) else 0,
        "is_pull_request": "pull_request" in raw,
        **times,
        "html_url": raw.get("html_url"),
    }


def shape_comment(raw: Any, issue: dict, where: str, stats: SkipStats) -> dict | None:
    """The ``comments`` row for one REST issue-comment object of ``issue`` (a shaped issue), or None."""
    if not require(raw, ("id", "created_at"), where, stats) or not _ids_ok(raw, ("id",), where, stats):
        return None
    times = _times(raw, ("created_at", "updated_at"), where, stats)
    if times is None:
        return None
    user = _user(raw)
    return {
        "id": raw["id"],
        "repo": issue["repo"],
        "issue_id": issue["id"],
        "issue_number": issue["number"],
        "body": _text(raw.get("body")),
        "user_login": user.get("login"),
        "user_type": user.get("type"),
        "is_bot": is_bot(user.get("login"), user.get("type")),
        "author_association": raw.get("author_association"),
        "created_at": times["created_at"],
        "updated_at": times["updated_at"] or times["created_at"],
        "html_url": raw.get("html_url"),
    }


def replace_marker(issue: dict) -> dict:
    """A ``comments`` row that deletes every stored comment of ``issue`` and is itself never stored
    (merge key ``issue_id``, ``replaced`` is the ``hard_delete`` column). Its id, minus the issue id,
    is no comment's."""
    return {"id": -issue["id"], "repo": issue["repo"], "issue_id": issue["id"], "issue_number": issue["number"],
            "replaced": True}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def issue_number(comment: dict) -> int | None:
    """The issue a REST comment belongs to: ``issue_url`` ends in ``/issues/<number>``."""
    url = comment.get("issue_url") or ""
    tail = url.rstrip("/").rsplit("/", 1)[-1]
    if tail.isdigit():
        return int(tail)
    number = comment.get("issue_number")
    return number if isinstance(number, int) else None
