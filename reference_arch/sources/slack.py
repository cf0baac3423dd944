"""Slack channels, users and messages (with thread replies) as a dlt source.

Two modes, one record shape:

- **API** (a ``token`` is given and no ``export_path``): the Web API's ``conversations.list``,
  ``users.list``, ``conversations.history`` and ``conversations.replies`` with cursor pagination;
  429 ``Retry-After`` and transient errors are retried (see ``http_client``); Slack's ``ok: false``
  answers raise a clear error.
- **Export** (offline): a standard workspace export folder (``channels.json``, ``users.json``,
  ``<channel name>/<YYYY-MM-DD>.json``) from ``export_path``, ``REFERENCE_ARCH_SLACK_EXPORT``, or the
  sample shipped in ``reference_arch/samples``.

Tables:

- ``channels`` (merge on ``id``): id, name, topic, purpose, is_archived, is_general, num_members, created_at
- ``users`` (merge on ``id``): id, name, real_name, display_name, title, is_bot, deleted, tz
- ``messages`` (merge on ``channel, ts``): channel, channel_name, ts, thread_ts, is_reply, reply_count,
  user, bot_id, subtype, text, created_at (UTC from ``ts``), updated_at (the last edit, else
  ``created_at``), day (UTC date of ``ts``). Thread replies are rows like any other, with ``thread_ts``
  pointing at their parent. Channel housekeeping (joins, topic changes) and tombstones (the
  "This message was deleted." placeholder of a deleted parent) are left out and counted in
  ``source.skipped.filtered``.

A window of whole UTC days replaces those days: each channel's day gets a marker row (merge key
``channel, day``; ``replaced`` is dlt's ``hard_delete`` column, so the marker deletes the stored day
and is not itself stored), so a message deleted since the last export or API read disappears when its
day is loaded again. Rows of a partly loaded day (a cursor-driven run, the ragged ends of a window not
on day boundaries) leave ``day`` empty: they neither replace their day nor are replaced by a marker
until a whole-day load reads them again. Two versions of one message in a load (an edit) keep the newest ``updated_at``
(dlt's ``dedup_sort``).

``messages`` loads incrementally with ``dlt.sources.incremental`` on ``ts``: with no ``latest`` the cursor
lives in the pipeline state; with ``latest`` the run loads exactly ``[oldest, latest)`` and leaves the
state alone, so day partitions can be loaded in any order. A reply is placed by its own ``ts``; in API
mode threads started up to ``replies_lookback_days`` before the window are scanned for replies in it.

Bad records in an export are skipped and counted in ``source.skipped`` (a ``SkipStats``).
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from reference_arch.sources.export_files import (SkipStats, existing_dir, newest_versions, read_records, repair_row,
                                                require, to_datetime, to_iso)
from reference_arch.common.settings import SAMPLES_DIR

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


def default_export_path() -> Path:
    return Path(os.environ.get(EXPORT_ENV) or SAMPLES_DIR / "slack")


def slack_export_path(export_path: str | Path | None = None) -> Path:
    """The export folder that offline mode reads, or ``FileNotFoundError`` naming it (check it before a run)."""
    return existing_dir(export_path or default_export_path(), "Slack export", EXPORT_ENV)


def to_slack_ts(value: Any) -> str | None:
    """Slack's message timestamp (``"1714000000.000100"``: epoch seconds, 6 decimals; sorts as text)."""
    moment = to_datetime(value)
    return None if moment is None else f"{moment.timestamp():.6f}"


def slack_source(channels: Iterable[str] | str | None = None, token: str | None = None,
                 export_path: str | Path | None = None, oldest: Any = None, latest: Any = None,
                 base_url: str = SLACK_API, *, include_private: bool = False, replies_lookback_days: int = 7,
                 page_size: int = 200, stats: SkipStats | None = None, **http_options):
    """The ``slack`` dlt source with resources ``channels``, ``users``, ``messages`` (see the module docstring).

    ``channels``: names or ids (default: every channel in the export; with the API, those the bot is in).
    ``oldest``/``latest``: datetimes, dates, ISO strings, epoch seconds or Slack ts, the window
    ``[oldest, latest)``. ``token``: pass ``os.environ["SLACK_BOT_TOKEN"]``; it is never logged.
    ``include_private``: also list private channels (the token then needs the ``groups:read`` scope).
    ``http_options`` go to :class:`RetryingSession`. The source carries ``source.skipped``.
    """
    import dlt

    wanted = [channels] if isinstance(channels, str) else list(channels or [])
    stats = stats if stats is not None else SkipStats()
    if export_path is None and token:
        reader: _ApiReader | _ExportReader = _ApiReader(base_url, token, page_size, replies_lookback_days,
                                                        include_private, stats, http_options)
    else:
        reader = _ExportReader(export_path or default_export_path(), stats)

    start, end = to_slack_ts(oldest), to_slack_ts(latest)
    if end is not None and start is None:
        start = "0000000000.000000"

    def channels_resource():
        yield dlt.mark.materialize_table_schema()
        yield [_shape_channel(raw) for raw in reader.channels()]

    def users_resource():
        yield dlt.mark.materialize_table_schema()
        for where, raw in reader.users():
            if require(raw, ("id",), where, stats):
                yield _shape_user(raw)

    # Only a window given by the caller replaces days (a cursor-driven run loads what is new, no more).
    days = whole_days(start, end) if oldest is not None and end is not None else []
    replaced = {day.isoformat() for day in days}

    def messages_resource(cursor=dlt.sources.incremental("ts", initial_value=start, end_value=end)):
        yield dlt.mark.materialize_table_schema()
        for channel in reader.select(wanted):
            yield [day_marker(channel["id"], day) for day in days]
            for rows in reader.messages(channel, oldest=cursor.start_value, latest=end):
                # A row names its day only when this load holds all of that day: a staged row's
                # (channel, day) deletes the stored day, which must not happen for a partial one.
                yield [{**row, "day": day_of(row["ts"], replaced)} for row in rows]

    resources = (
        dlt.resource(channels_resource, name="channels", primary_key="id", write_disposition="merge",
                     columns=CHANNEL_COLUMNS),
        dlt.resource(users_resource, name="users", primary_key="id", write_disposition="merge",
                     columns=USER_COLUMNS),
        dlt.resource(messages_resource, name="messages", primary_key=("channel", "ts"), merge_key=("channel", "day"),
                     write_disposition="merge", columns=MESSAGE_COLUMNS),
    )
    # Text from the API or an export may hold lone surrogates, which no writer accepts: repair, count.
    for resource, key in zip(resources, (("id",), ("id",), ("channel", "ts"))):
        resource.add_map(lambda row, name=resource.name, key=key: repair_row(row, name, key, stats), insert_at=1)

    @dlt.source(name="slack", max_table_nesting=0)
    def slack():
        return resources

    source = slack()
    source.skipped = stats
    return source


# --- record shape ----------------------------------------------------------------------------------------------

def _value(field: Any) -> str:
    """Slack's topic and purpose are ``{"value": ...}`` objects."""
    return (field.get("value") if isinstance(field, dict) else field) or ""


def _shape_channel(raw: dict) -> dict:
    members = raw.get("members")
    return {
        "id": raw["id"],
        "name": raw.get("name"),
        "topic": _value(raw.get("topic")),
        "purpose": _value(raw.get("purpose")),
        "is_archived": bool(raw.get("is_archived")),
        "is_general": bool(raw.get("is_general")),
        "num_members": raw.get("num_members", len(members) if isinstance(members, list) else None),
        "created_at": to_iso(raw.get("created")) if isinstance(raw.get("created"), (int, float)) else None,
    }


def _shape_user(raw: dict) -> dict:
    profile = raw.get("profile") if isinstance(raw.get("profile"), dict) else {}
    return {
        "id": raw["id"],
        "name": raw.get("name"),
        "real_name": raw.get("real_name") or profile.get("real_name"),
        "display_name": profile.get("display_name") or raw.get("name"),
        "title": profile.get("title"),
        "is_bot": bool(raw.get("is_bot")),
        "deleted": bool(raw.get("deleted")),
        "tz": raw.get("tz"),
    }


def shape_message(raw: Any, channel: dict, where: str, stats: SkipStats) -> dict | None:
    """The ``messages`` row for one Slack message in ``channel`` (a raw channel object), or None."""
    if not require(raw, ("ts",), where, stats):
        return None
    if raw.get("subtype") in HOUSEKEEPING:
        stats.filtered["housekeeping"] += 1
        return None
    if raw.get("subtype") == TOMBSTONE:  # its text is Slack's placeholder, not what anyone wrote
        stats.filtered["tombstone"] += 1
        return None
    edited = raw.get("edited") if isinstance(raw.get("edited"), dict) else {}
    try:
        ts = f"{float(raw['ts']):.6f}"
        thread_ts = f"{float(raw['thread_ts']):.6f}" if raw.get("thread_ts") else None
        edited_ts = float(edited["ts"]) if edited.get("ts") else None
    except (TypeError, ValueError):
        stats.skip("bad_timestamp", where, str(raw.get("ts"))[:40])
        return None
    created = to_datetime(float(ts))
    return {
        "channel": channel["id"],
        "channel_name": channel.get("name"),
        "ts": ts,
        "thread_ts": thread_ts,
        "is_reply": thread_ts is not None and thread_ts != ts,
        "reply_count": raw.get("reply_count") or 0,
        "user": raw.get("user"),
        "bot_id": raw.get("bot_id"),
        "subtype": raw.get("subtype"),
        "text": raw.get("text") if isinstance(raw.get("text"), str) else "",
        "created_at": to_iso(created),
        "updated_at": to_iso(max(float(ts), edited_ts or 0.0)),
        "day": None,  # set by the resource when the load holds the whole day (see day_of)
    }


def whole_days(start: str, end: str) -> list[date]:
    """The UTC days lying wholly inside ``[start, end)`` (Slack ts)."""
    first, last = to_datetime(float(start)), to_datetime(float(end))
    day = first.date() if first.time() == datetime.min.time() else first.date() + timedelta(days=1)
    days = []
    while datetime.combine(day + timedelta(days=1), datetime.min.time(), timezone.utc) <= last:
        days.append(day)
        day += timedelta(days=1)
    return days


def day_of(ts: str, replaced: set[str]) -> str | None:
    day = to_datetime(float(ts)).date().isoformat()
    return day if day in replaced else None


def day_marker(channel: str, day: date) -> dict:
    """The ``messages`` row that replaces ``channel``'s ``day`` (see the module docstring)."""
    first = datetime.combine(day, datetime.min.time(), timezone.utc).timestamp()
    return {"channel": channel, "ts": f"{first:.6f}{DAY_MARKER}", "day": day.isoformat(), "replaced": True}


def _pick(available: list[dict], wanted: list[str], where: str) -> list[dict]:
    by_key = {key: channel for channel in available for key in (channel.get("id"), channel.get("name")) if key}
    missing = [name for name in wanted if name.lstrip("#") not in by_key]
    if missing:
        names = ", ".join(sorted(c.get("name") or c["id"] for c in available)) or "none"
        raise ValueError(f"Slack channel(s) {', '.join(missing)} not found in {where} (available: {names})")
    return [by_key[name.lstrip("#")] for name in wanted]


# --- readers ---------------------------------------------------------------------------------------------------

SLACK_HINTS = {
    "invalid_auth": "check SLACK_BOT_TOKEN: it is invalid",
    "not_authed": "set SLACK_BOT_TOKEN",
    "token_revoked": "SLACK_BOT_TOKEN was revoked",
    "token_expired": "SLACK_BOT_TOKEN expired",
    "account_inactive": "the bot's account is deactivated",
    "not_in_channel": "invite the bot to the channel",
    "channel_not_found": "check the channel id, and that the bot can see it",
}


class _ApiReader:
    def __init__(self, base_url: str, token: str, page_size: int, lookback_days: int, include_private: bool,
                 stats: SkipStats, http_options: dict):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.page_size = page_size
        self.lookback = timedelta(days=lookback_days)
        self.types = "public_channel,private_channel" if include_private else "public_channel"
        self.stats = stats
        self.http_options = http_options
        self._client = None
        self._channels: list[dict] | None = None

    @property
    def client(self):
        if self._client is None:
            from reference_arch.sources.http_client import rest_client

            self._client = rest_client(self.base_url, "Slack", token=self.token, **self.http_options)
        return self._client

    def _pages(self, method: str, key: str, params: dict) -> Iterator[list]:
        from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

        from reference_arch.sources.http_client import ApiError

        def check(response, *args, **kwargs):
            response.raise_for_status()  # our session retries or explains HTTP errors
            body = response.json()
            if not body.get("ok", False):
                error = body.get("error", "unknown_error")
                needed = f"; needs scope {body['needed']}" if body.get("needed") else ""
                hint = SLACK_HINTS.get(error, "")
                raise ApiError(f"Slack API error for {method}: {error}{needed}" + (f" ({hint})" if hint else ""))

        paginator = JSONResponseCursorPaginator(cursor_path="response_metadata.next_cursor", cursor_param="cursor")
        yield from self.client.paginate(f"/{method}", params={"limit": self.page_size, **params},
                                        paginator=paginator, data_selector=key, hooks={"response": [check]})

    def channels(self) -> list[dict]:
        if self._channels is None:
            found = []
            for page in self._pages("conversations.list", "channels",
                                    {"types": self.types, "exclude_archived": "true"}):
                found.extend(raw for raw in page if require(raw, ("id",), "conversations.list", self.stats))
            self._channels = found
        return self._channels

    def users(self) -> Iterator[tuple[str, Any]]:
        for page in self._pages("users.list", "members", {}):
            for raw in page:
                yield "users.list", raw

    def select(self, wanted: list[str]) -> list[dict]:
        available = self.channels()
        if wanted:
            return _pick(available, wanted, "conversations.list")
        return [channel for channel in available if channel.get("is_member")]

    def messages(self, channel: dict, oldest: str | None, latest: str | None) -> Iterator[list[dict]]:
        # Reach back for threads started before the window whose replies may fall inside it. Slack's bounds
        # are exclusive unless `inclusive`; the cursor trims the window exactly afterwards.
        params = {"channel": channel["id"], "inclusive": "true"}
        if oldest and float(oldest) > 0:
            params["oldest"] = f"{max(0.0, float(oldest) - self.lookback.total_seconds()):.6f}"
        if latest:
            params["latest"] = latest
        for page in self._pages("conversations.history", "messages", params):
            rows = [shape_message(raw, channel, "conversations.history", self.stats) for raw in page]
            yield [row for row in rows if row]
            for raw in page:
                if isinstance(raw, dict) and raw.get("reply_count") and raw.get("ts") and (
                        not oldest or float(raw.get("latest_reply") or raw["ts"]) >= float(oldest)):
                    yield from self._replies(channel, raw["ts"], oldest, latest)

    def _replies(self, channel: dict, thread_ts: str, oldest: str | None, latest: str | None):
        params = {"channel": channel["id"], "ts": thread_ts, "inclusive": "true"}
        if oldest and float(oldest) > 0:
            params["oldest"] = oldest
        if latest:
            params["latest"] = latest
        for page in self._pages("conversations.replies", "messages", params):
            # The parent comes back first in every thread answer; history already gave it.
            rows = [shape_message(raw, channel, "conversations.replies", self.stats) for raw in page
                    if not (isinstance(raw, dict) and raw.get("ts") == thread_ts)]
            yield [row for row in rows if row]


class _ExportReader:
    def __init__(self, export_path: str | Path, stats: SkipStats):
        self.export_path = export_path
        self.stats = stats
        self._channels: list[dict] | None = None

    @property
    def folder(self) -> Path:
        return slack_export_path(self.export_path)

    def channels(self) -> list[dict]:
        if self._channels is None:
            path = self.folder / "channels.json"
            if not path.is_file():
                if not any(self.folder.iterdir()):
                    return []  # an empty export is an empty source, not an error
                raise FileNotFoundError(f"Slack export {self.folder} has no channels.json")
            self._channels = [raw for where, raw in read_records(path, self.stats)
                              if require(raw, ("id", "name"), where, self.stats)]
        return self._channels

    def users(self) -> Iterator[tuple[str, Any]]:
        path = self.folder / "users.json"
        if path.is_file():
            yield from read_records(path, self.stats)

    def select(self, wanted: list[str]) -> list[dict]:
        available = self.channels()
        return _pick(available, wanted, f"{self.folder / 'channels.json'}") if wanted else available

    def messages(self, channel: dict, oldest: str | None, latest: str | None) -> Iterator[list[dict]]:
        folder = self.folder / channel["name"]
        if not folder.is_dir():
            return
        # Day files are named in the workspace's time zone: read a day either side, the cursor trims exactly.
        first = _day(oldest, -1)
        last = _day(latest, +1)
        rows: list[dict | None] = []
        for path in sorted(folder.iterdir()):
            if not DAY_FILE.match(path.name):
                continue
            day = date.fromisoformat(path.stem)
            if (first and day < first) or (last and day > last):
                continue
            rows += [shape_message(raw, channel, where, self.stats) for where, raw in read_records(path, self.stats)]
        # A message in two files (an export merged from two) keeps its newest edit.
        yield newest_versions([row for row in rows if row], ("channel", "ts"), self.stats)


def _day(ts: str | None, shift: int) -> date | None:
    if ts is None:
        return None
    return (to_datetime(float(ts)) + timedelta(days=shift)).date()
