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

Parts: ``settings`` (constants, table schemas), ``helpers`` (the record shape), ``readers`` (the REST
API and an export folder); this module holds the dlt source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from reference_arch.sources.export_files import SkipStats, named_source, repair_row, to_iso
from reference_arch.sources.github.helpers import default_export_path, github_export_path, replace_marker
from reference_arch.sources.github.readers import ApiReader, ExportReader
from reference_arch.sources.github.settings import COMMENT_COLUMNS, EPOCH, GITHUB_API, ISSUE_COLUMNS

__all__ = ["github_export_path", "github_source"]


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
        reader: ApiReader | ExportReader = ApiReader(base_url, token, per_page, stats, http_options)
    else:
        reader = ExportReader(export_path or default_export_path(), stats)

    start, end = to_iso(since), to_iso(until)
    if end is not None and start is None:
        start = EPOCH
    resources = _resources(reader, repo_list, window_on, start, end, stats)

    return named_source("github", resources, stats)


def _resources(reader: ApiReader | ExportReader, repo_list: list[str], window_on: str, start: str | None,
               end: str | None, stats: SkipStats) -> tuple:
    """The ``issues`` resource over ``reader`` (``[start, end)`` on ``window_on``) and the ``comments``
    transformer that reads each loaded issue's comments."""
    import dlt

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
    return issues_resource, comments_resource
