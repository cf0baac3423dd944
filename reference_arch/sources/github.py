"""GitHub issues, pull requests and their comments as a dlt source.

Two modes, one record shape:

- **API** (a ``token`` is given and no ``export_path``): the REST API's ``/repos/{owner}/{repo}/issues``
  (``state=all``, ``sort=updated``, ``since``), ``Link``-header pagination, then each issue's
  ``/issues/{number}/comments``. Transient errors and rate limits are retried (see ``http_client``).
- **Export** (offline): a folder ``<export>/<owner>/<repo>/`` holding ``issues*.json`` and
  ``comments*.json`` (the API's JSON: a list per file, or ``.jsonl`` with one object per line), from
  ``export_path``, ``REFERENCE_ARCH_GITHUB_EXPORT``, or the sample shipped in ``reference_arch/samples``.

Tables (merge on ``id``; nested values stay JSON columns). When one load holds several versions of a
record (update-sorted paging returns an issue twice when it is updated mid-listing), the newest
``updated_at`` wins (dlt's ``dedup_sort``); an export keeps only the newest version of each id
whatever file or window it is read in, so loading windows in any order never brings an older version
back. Loading an issue replaces all its comments (merge key ``issue_id``, and a ``replaced`` marker
row per issue, never stored: dlt's ``hard_delete``), so a deleted comment disappears when its issue
is next loaded.

- ``issues``: id, number, repo, title, body, state, state_reason, user_login, user_type,
  author_association, labels (JSON list of names), comment_count, is_pull_request, created_at,
  updated_at, closed_at, html_url
- ``comments``: id, repo, issue_id, issue_number, body, user_login, user_type, is_bot,
  author_association, created_at, updated_at, html_url

Loading is incremental with ``dlt.sources.incremental`` on ``window_on`` (``updated_at`` by default):
with no ``until`` the cursor lives in the pipeline state and the next run asks only for what changed;
with ``until`` the run loads exactly ``[since, until)`` and leaves the state alone, so day or month
partitions can be loaded in any order. ``window_on="created_at"`` windows on creation time instead
(the API is still asked with ``since``, which filters on update time and so returns a superset).
Comments follow their issue: an issue whose ``updated_at`` moved is loaded again with all its comments.

Bad records in an export are skipped and counted in ``source.skipped`` (a ``SkipStats``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from reference_arch.sources.export_files import (SkipStats, existing_dir, newest_versions, read_records, repair_row,
                                                require, to_iso)
from reference_arch.common.settings import SAMPLES_DIR

GITHUB_API = "https://api.github.com"
EXPORT_ENV = "REFERENCE_ARCH_GITHUB_EXPORT"
# The repository's people: their replies are the answers the finetune location learns from.
MAINTAINER_ASSOCIATIONS = ("OWNER", "MEMBER", "COLLABORATOR")
EPOCH = "1970-01-01T00:00:00Z"

ISSUE_COLUMNS = {
    "id": {"data_type": "bigint", "nullable": False},
    "number": {"data_type": "bigint"},
    "repo": {"data_type": "text"},
    "title": {"data_type": "text"},
    "body": {"data_type": "text"},
    "state": {"data_type": "text"},
    "state_reason": {"data_type": "text"},
    "user_login": {"data_type": "text"},
    "user_type": {"data_type": "text"},
    "author_association": {"data_type": "text"},
    "labels": {"data_type": "json"},
    "comment_count": {"data_type": "bigint"},
    "is_pull_request": {"data_type": "bool"},
    "created_at": {"data_type": "timestamp"},
    "updated_at": {"data_type": "timestamp", "dedup_sort": "desc"},  # duplicates in one load: newest wins
    "closed_at": {"data_type": "timestamp"},
    "html_url": {"data_type": "text"},
}
COMMENT_COLUMNS = {
    "id": {"data_type": "bigint", "nullable": False},
    "repo": {"data_type": "text"},
    "issue_id": {"data_type": "bigint"},
    "issue_number": {"data_type": "bigint"},
    "body": {"data_type": "text"},
    "user_login": {"data_type": "text"},
    "user_type": {"data_type": "text"},
    "is_bot": {"data_type": "bool"},
    "author_association": {"data_type": "text"},
    "created_at": {"data_type": "timestamp"},
    "updated_at": {"data_type": "timestamp", "dedup_sort": "desc"},
    "html_url": {"data_type": "text"},
    # True only on an issue's marker row: it deletes the issue's stored comments and is not inserted.
    "replaced": {"data_type": "bool", "hard_delete": True},
}


def default_export_path() -> Path:
    return Path(os.environ.get(EXPORT_ENV) or SAMPLES_DIR / "github")


def github_export_path(export_path: str | Path | None = None) -> Path:
    """The export folder that offline mode reads, or ``FileNotFoundError`` naming it (check it before a run)."""
    return existing_dir(export_path or default_export_path(), "GitHub export", EXPORT_ENV)


def is_bot(login: str | None, user_type: str | None) -> bool:
    return user_type == "Bot" or bool(login and login.endswith("[bot]"))


def github_source(repos: Iterable[str] | str | None = None, since: Any = None, until: Any = None,
                  token: str | None = None, export_path: str | Path | None = None, base_url: str = GITHUB_API,
                  *, window_on: str = "updated_at", per_page: int = 100, stats: SkipStats | None = None,
                  **http_options):
    """The ``github`` dlt source with resources ``issues`` and ``comments`` (see the module docstring).

    ``repos``: ``"owner/name"`` strings (required with the API; offline, default: every repo in the export).
    ``since``/``until``: datetimes, dates, ISO strings or epoch seconds (UTC), the half-open window
    ``[since, until)`` on ``window_on``. ``token``: pass ``os.environ["GITHUB_TOKEN"]``; it is never logged.
    ``http_options`` go to :class:`RetryingSession` (``max_attempts``, ``backoff``, ``max_wait``, ``timeout``).
    The returned source carries ``source.skipped``, filled while it is extracted.
    """
    import dlt

    if window_on not in ("updated_at", "created_at"):
        raise ValueError(f"window_on must be 'updated_at' or 'created_at', not {window_on!r}")
    repo_list = [repos] if isinstance(repos, str) else list(repos or [])
    for repo in repo_list:
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise ValueError(f"GitHub repository must look like 'owner/name', not {repo!r}")
    stats = stats if stats is not None else SkipStats()
    if export_path is None and token:
        if not repo_list:
            raise ValueError("github_source: name the repositories to read from the API (repos=['owner/name'])")
        reader: _ApiReader | _ExportReader = _ApiReader(base_url, token, per_page, stats, http_options)
    else:
        reader = _ExportReader(export_path or default_export_path(), stats)

    start, end = to_iso(since), to_iso(until)
    if end is not None and start is None:
        start = EPOCH

    def issues(cursor=dlt.sources.incremental(window_on, initial_value=start, end_value=end)):
        # Create both tables even when the window is empty, so readers can always query them.
        yield dlt.mark.materialize_table_schema()
        for repo in reader.repos(repo_list):
            # The API filters on update time; a creation-time cursor's start is a safe lower bound for it.
            yield from reader.issues(repo, since=cursor.start_value)

    def comments(page):
        if not page:
            yield dlt.mark.materialize_table_schema()
        for issue in page if isinstance(page, list) else [page]:
            # The issue's comments are read whole: first clear what is stored, so deleted ones go.
            yield replace_marker(issue)
            yield from reader.comments(issue)

    issues_resource = dlt.resource(issues, name="issues", primary_key="id", write_disposition="merge",
                                   columns=ISSUE_COLUMNS)
    comments_resource = dlt.transformer(comments, data_from=issues_resource, name="comments", primary_key="id",
                                        merge_key="issue_id", write_disposition="merge", columns=COMMENT_COLUMNS)
    # Text from the API or an export may hold lone surrogates, which no writer accepts: repair, count.
    issues_resource.add_map(lambda row: repair_row(row, "issues", ("repo", "number"), stats), insert_at=1)
    comments_resource.add_map(lambda row: repair_row(row, "comments", ("repo", "id"), stats))

    @dlt.source(name="github", max_table_nesting=0)
    def github():
        return issues_resource, comments_resource

    source = github()
    source.skipped = stats
    return source


# --- record shape ----------------------------------------------------------------------------------------------

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


def _issue_number(comment: dict) -> int | None:
    """The issue a REST comment belongs to: ``issue_url`` ends in ``/issues/<number>``."""
    url = comment.get("issue_url") or ""
    tail = url.rstrip("/").rsplit("/", 1)[-1]
    if tail.isdigit():
        return int(tail)
    number = comment.get("issue_number")
    return number if isinstance(number, int) else None


# --- readers ---------------------------------------------------------------------------------------------------

class _ApiReader:
    def __init__(self, base_url: str, token: str, per_page: int, stats: SkipStats, http_options: dict):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.per_page = per_page
        self.stats = stats
        self.http_options = http_options
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from dlt.sources.helpers.rest_client.paginators import HeaderLinkPaginator

            from reference_arch.sources.http_client import rest_client

            self._client = rest_client(
                self.base_url, "GitHub", token=self.token, paginator=HeaderLinkPaginator(), data_selector="$",
                headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
                hint=_github_hint, **self.http_options)
        return self._client

    def repos(self, requested: list[str]) -> list[str]:
        return requested

    def issues(self, repo: str, since: str | None) -> Iterator[list[dict]]:
        params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": self.per_page}
        if since:
            params["since"] = since
        for page in self.client.paginate(f"/repos/{repo}/issues", params=params):
            rows = [shape_issue(raw, repo, f"{repo} issues", self.stats) for raw in page]
            yield [row for row in rows if row]

    def comments(self, issue: dict) -> Iterator[list[dict]]:
        if not issue["comment_count"]:
            return
        path = f"/repos/{issue['repo']}/issues/{issue['number']}/comments"
        for page in self.client.paginate(path, params={"per_page": self.per_page}):
            rows = [shape_comment(raw, issue, path, self.stats) for raw in page]
            yield [row for row in rows if row]


def _github_hint(response) -> str | None:
    return {401: "check GITHUB_TOKEN: it is missing, invalid or expired",
            404: "check the repository name, and that GITHUB_TOKEN can read it"}.get(response.status_code)


class _ExportReader:
    def __init__(self, export_path: str | Path, stats: SkipStats):
        self.export_path = export_path
        self.stats = stats
        self._comments: dict[str, dict[int, list[tuple[str, dict]]]] = {}

    @property
    def folder(self) -> Path:
        return github_export_path(self.export_path)

    def repos(self, requested: list[str]) -> list[str]:
        folder = self.folder
        found = sorted(f"{p.parent.name}/{p.name}" for p in folder.glob("*/*") if p.is_dir())
        if not requested:
            return found  # an empty export is an empty source, not an error
        missing = [repo for repo in requested if not (folder / repo).is_dir()]
        if missing:
            raise FileNotFoundError(f"GitHub export {folder} has no folder for {', '.join(missing)} "
                                    f"(found: {', '.join(found) or 'none'})")
        return requested

    def _files(self, repo: str, prefix: str) -> list[Path]:
        return sorted(p for p in (self.folder / repo).glob(f"{prefix}*") if p.suffix in (".json", ".jsonl"))

    def issues(self, repo: str, since: str | None) -> Iterator[list[dict]]:
        # The whole export first: an older version of an issue must lose to a newer one in any file or
        # window, or loading the older one's day after the newer one's would bring it back.
        rows = [shape_issue(raw, repo, where, self.stats) for path in self._files(repo, "issues")
                for where, raw in read_records(path, self.stats)]
        yield newest_versions([row for row in rows if row], ("id",), self.stats)

    def comments(self, issue: dict) -> Iterator[list[dict]]:
        by_issue = self._comment_index(issue["repo"])
        rows = [shape_comment(raw, issue, where, self.stats) for where, raw in by_issue.get(issue["number"], [])]
        yield newest_versions([row for row in rows if row], ("id",), self.stats)

    def _comment_index(self, repo: str) -> dict[int, list[tuple[str, dict]]]:
        if repo not in self._comments:
            index: dict[int, list[tuple[str, dict]]] = {}
            for path in self._files(repo, "comments"):
                for where, raw in read_records(path, self.stats):
                    number = _issue_number(raw) if isinstance(raw, dict) else None
                    if number is None:
                        self.stats.skip("missing_fields", where, "issue_url")
                        continue
                    index.setdefault(number, []).append((where, raw))
            self._comments[repo] = index
        return self._comments[repo]
