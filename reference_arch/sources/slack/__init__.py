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

Parts: ``settings`` (constants, table schemas), ``helpers`` (the record shape, day windows), ``readers``
(the Web API and an export folder); this module holds the dlt source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from reference_arch.sources.export_files import SkipStats, named_source, repair_row, require
from reference_arch.sources.slack.helpers import (day_marker, day_of, default_export_path, shape_channel, shape_user,
                                                  slack_export_path, to_slack_ts, whole_days)
from reference_arch.sources.slack.readers import ApiReader, ExportReader
from reference_arch.sources.slack.settings import CHANNEL_COLUMNS, MESSAGE_COLUMNS, SLACK_API, USER_COLUMNS

__all__ = ["slack_export_path", "slack_source", "to_slack_ts"]


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
        reader: ApiReader | ExportReader = ApiReader(base_url, token, page_size, replies_lookback_days,
                                                     include_private, stats, http_options)
    else:
        reader = ExportReader(export_path or default_export_path(), stats)

    start, end = to_slack_ts(oldest), to_slack_ts(latest)
    if end is not None and start is None:
        start = "0000000000.000000"
    # Only a window given by the caller replaces days (a cursor-driven run loads what is new, no more).
    days = whole_days(start, end) if oldest is not None and end is not None else []
    resources = _resources(reader, wanted, start, end, days, stats)

    return named_source("slack", resources, stats)


def _resources(reader: ApiReader | ExportReader, wanted: list[str], start: str | None, end: str | None,
               days: list, stats: SkipStats) -> tuple:
    """The ``channels``, ``users`` and ``messages`` resources over ``reader``; ``messages`` reads
    ``[start, end)`` and replaces the whole ``days`` in it."""
    import dlt

    replaced = {day.isoformat() for day in days}

    def channels_resource():
        yield dlt.mark.materialize_table_schema()
        yield [shape_channel(raw) for raw in reader.channels()]

    def users_resource():
        yield dlt.mark.materialize_table_schema()
        for where, raw in reader.users():
            if require(raw, ("id",), where, stats):
                yield shape_user(raw)

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
    return resources
