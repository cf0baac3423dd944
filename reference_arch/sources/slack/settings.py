"""The Slack source's constants and table schemas."""

from __future__ import annotations

import re

SLACK_API = "https://slack.com/api"
EXPORT_ENV = "REFERENCE_ARCH_SLACK_EXPORT"
TOMBSTONE = "tombstone"  # a deleted parent kept for its replies ("This message was deleted.")
HOUSEKEEPING = {"channel_join", "channel_leave", "channel_topic", "channel_purpose", "channel_name",
                "channel_archive", "channel_unarchive", "bot_add", "bot_remove"}
DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.json$")

CHANNEL_COLUMNS = {
    "id": {"data_type": "text", "nullable": False},
    "name": {"data_type": "text"},
    "topic": {"data_type": "text"},
    "purpose": {"data_type": "text"},
    "is_archived": {"data_type": "bool"},
    "is_general": {"data_type": "bool"},
    "num_members": {"data_type": "bigint"},
    "created_at": {"data_type": "timestamp"},
}
USER_COLUMNS = {
    "id": {"data_type": "text", "nullable": False},
    "name": {"data_type": "text"},
    "real_name": {"data_type": "text"},
    "display_name": {"data_type": "text"},
    "title": {"data_type": "text"},
    "is_bot": {"data_type": "bool"},
    "deleted": {"data_type": "bool"},
    "tz": {"data_type": "text"},
}
MESSAGE_COLUMNS = {
    "channel": {"data_type": "text", "nullable": False},
    "channel_name": {"data_type": "text"},
    "ts": {"data_type": "text", "nullable": False},
    "thread_ts": {"data_type": "text"},
    "is_reply": {"data_type": "bool"},
    "reply_count": {"data_type": "bigint"},
    "user": {"data_type": "text"},
    "bot_id": {"data_type": "text"},
    "subtype": {"data_type": "text"},
    "text": {"data_type": "text"},
    "created_at": {"data_type": "timestamp"},
    "updated_at": {"data_type": "timestamp", "dedup_sort": "desc"},  # duplicates in one load: newest wins
    "day": {"data_type": "text", "nullable": True},  # UTC YYYY-MM-DD of ts, when the load holds the whole day
    # True only on a day marker: it deletes the stored (channel, day) and is not inserted.
    "replaced": {"data_type": "bool", "hard_delete": True},
}
DAY_MARKER = "#day"  # a day marker's ts: the day's first ts and this suffix, which no real ts has
