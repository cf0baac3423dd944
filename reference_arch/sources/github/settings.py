"""The GitHub source's constants and table schemas."""

from __future__ import annotations

GITHUB_API = "https://api.github.com"
EXPORT_ENV = "REFERENCE_ARCH_GITHUB_EXPORT"
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

