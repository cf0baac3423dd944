"""The Slack source's record shape: channels, users and messages as rows, day windows and markers."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from reference_arch.common import settings
from reference_arch.common.settings import SAMPLES_DIR
from reference_arch.sources.export_files import SkipStats, existing_dir, require, to_datetime, to_iso
from reference_arch.sources.slack.settings import DAY_MARKER, EXPORT_ENV, HOUSEKEEPING, TOMBSTONE


def default_export_path() -> Path:
    return Path(settings.value("slack_export") or SAMPLES_DIR / "slack")


def slack_export_path(export_path: str | Path | None = None) -> Path:
    """The export folder that offline mode reads, or ``FileNotFoundError`` naming it (check it before a run)."""
    return existing_dir(export_path or default_export_path(), "Slack export", EXPORT_ENV)


def to_slack_ts(value: Any) -> str | None:
    """Slack's message timestamp (``"1714000000.000100"``: epoch seconds, 6 decimals; sorts as text)."""
    moment = to_datetime(value)
    return None if moment is None else f"{moment.timestamp():.6f}"


def _value(field: Any) -> str:
    """Slack's topic and purpose are ``{"value": ...}`` objects."""
    return (field.get("value") if isinstance(field, dict) else field) or ""


def shape_channel(raw: dict) -> dict:
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


def shape_user(raw: dict) -> dict:
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


def pick_channels(available: list[dict], wanted: list[str], where: str) -> list[dict]:
    by_key = {key: channel for channel in available for key in (channel.get("id"), channel.get("name")) if key}
    missing = [name for name in wanted if name.lstrip("#") not in by_key]
    if missing:
        names = ", ".join(sorted(c.get("name") or c["id"] for c in available)) or "none"
        raise ValueError(f"Slack channel(s) {', '.join(missing)} not found in {where} (available: {names})")
    return [by_key[name.lstrip("#")] for name in wanted]
