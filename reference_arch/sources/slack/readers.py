"""Where Slack records come from: the Web API (``ApiReader``) or an export folder (``ExportReader``).
Both list channels and users and yield messages (thread replies included) as shaped rows."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any, Iterator

from reference_arch.sources.export_files import SkipStats, newest_versions, read_records, require, to_datetime
from reference_arch.sources.slack.helpers import pick_channels, shape_message, slack_export_path
from reference_arch.sources.slack.settings import DAY_FILE


SLACK_HINTS = {
    "invalid_auth": "check SLACK_BOT_TOKEN: it is invalid",
    "not_authed": "set SLACK_BOT_TOKEN",
    "token_revoked": "SLACK_BOT_TOKEN was revoked",
    "token_expired": "SLACK_BOT_TOKEN expired",
    "account_inactive": "the bot's account is deactivated",
    "not_in_channel": "invite the bot to the channel",
    "channel_not_found": "check the channel id, and that the bot can see it",
}


class ApiReader:
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
            return pick_channels(available, wanted, "conversations.list")
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


class ExportReader:
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
        return pick_channels(available, wanted, f"{self.folder / 'channels.json'}") if wanted else available

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
