"""Where GitHub records come from: the REST API (``ApiReader``) or an export folder (``ExportReader``).
Both list a repository's issues and an issue's comments as shaped rows."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from reference_arch.sources.export_files import SkipStats, newest_versions, read_records
from reference_arch.sources.github.helpers import github_export_path, issue_number, shape_comment, shape_issue


class ApiReader:
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


class ExportReader:
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
                    number = issue_number(raw) if isinstance(raw, dict) else None
                    if number is None:
                        self.stats.skip("missing_fields", where, "issue_url")
                        continue
                    index.setdefault(number, []).append((where, raw))
            self._comments[repo] = index
        return self._comments[repo]
