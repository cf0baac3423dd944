"""The Slack dlt source: against a local server speaking the Web API, and on exports (the sample and bad ones)."""

from __future__ import annotations

import json
import logging

import pytest

from reference_arch.sources.slack import slack_export_path, slack_source, to_slack_ts

from .conftest import SLACK_TOKEN, error_text, loaded


def api_source(fake, sleeps, **kwargs):
    kwargs.setdefault("token", SLACK_TOKEN)
    return slack_source(base_url=fake.url, sleep=sleeps, backoff=0.01, **kwargs)


def seed(fake):
    """general: 3 top-level messages, one with 3 replies; help: 2 messages, one with a reply; random: not a member."""
    first = fake.post("C1", 0, "welcome to tidepool")
    for i in range(3):
        fake.post("C1", 10 + i, f"reply {i}", user="U2", thread=first)
    fake.post("C1", 100, "community call thursday")
    fake.post("C1", 200, "0.9.0 is out")
    question = fake.post("C2", 50, "how do I set dayfirst?", user="U3")
    fake.post("C2", 60, "[io] dayfirst = true", user="U1", thread=question)
    fake.post("C2", 300, "thanks!", user="U3")
    fake.post("C3", 5, "random chatter")


def test_api_pages_channels_users_messages_and_threads(slack_api, loader, no_sleep, all_logs):
    seed(slack_api)
    source = api_source(slack_api, no_sleep)
    loader.run(source)

    assert loader.rows("select id, name, topic from raw.channels order by id")[0] == ("C1", "general", "hello")
    assert loader.rows("select count(*) from raw.channels") == [(3,)]
    assert loader.rows("select count(*) from raw.users") == [(5,)]
    # The bot is a member of general and help only; replies are rows with thread_ts pointing at the parent.
    assert loader.rows("select channel_name, count(*), sum(is_reply::int) from raw.messages group by all order by 1") \
        == [("general", 6, 3), ("help", 3, 1)]
    assert loader.rows("select count(*), count(distinct (channel, ts)) from raw.messages") == [(9, 9)]
    parent = loader.rows("select ts, reply_count from raw.messages where text = 'welcome to tidepool'")[0]
    assert parent[1] == 3
    assert loader.rows(f"select count(*) from raw.messages where thread_ts = '{parent[0]}' and is_reply") == [(3,)]
    # Cursor pagination, two records a page: five users take three requests, general's history two.
    requests = slack_api.api.requests
    assert [r["query"].get("cursor") for r in requests if r["path"] == "/users.list"] == [None, "2", "4"]
    history = [r for r in requests if r["path"] == "/conversations.history" and r["query"]["channel"] == "C1"]
    assert len(history) == 2 and history[1]["query"]["cursor"] == "2"
    assert len([r for r in requests if r["path"] == "/conversations.replies"]) == 3  # two pages + one
    assert "Making GET request" in all_logs.text and SLACK_TOKEN not in all_logs.text
    assert all(r["headers"]["Authorization"] == f"Bearer {SLACK_TOKEN}" for r in requests)


def test_api_second_run_asks_oldest_and_loads_only_new(slack_api, loader, no_sleep):
    seed(slack_api)
    loader.run(api_source(slack_api, no_sleep))
    newest = f"{slack_api.base + 300}.000100"  # the last message loaded ("thanks!" in help)
    help_thread = slack_api.messages["C2"][0]["ts"]
    slack_api.post("C1", 1000, "new message")
    slack_api.post("C2", 1001, "late answer in an old thread", user="U1", thread=help_thread)
    slack_api.api.requests.clear()
    second = loader.run(api_source(slack_api, no_sleep))

    history = [r for r in slack_api.api.requests if r["path"] == "/conversations.history"]
    # Asked from the cursor, reaching back a week for threads that may have new replies.
    assert float(history[0]["query"]["oldest"]) == pytest.approx(float(newest) - 7 * 86400)
    assert loaded(second, "messages") == 2
    assert loader.rows("select count(*), count(distinct (channel, ts)) from raw.messages") == [(11, 11)]
    assert loader.rows("select is_reply from raw.messages where text = 'late answer in an old thread'") == [(True,)]


def test_api_retries_429_with_retry_after(slack_api, loader, no_sleep):
    seed(slack_api)
    slack_api.api.fail("/conversations.history", 429, {"Retry-After": "3"}, {"ok": False, "error": "ratelimited"})
    slack_api.api.fail("/users.list", 500)
    loader.run(api_source(slack_api, no_sleep))
    assert loader.rows("select count(*) from raw.messages") == [(9,)]
    assert 3 in no_sleep and len(no_sleep) == 2


def test_api_errors_are_clear(slack_api, loader, no_sleep):
    seed(slack_api)
    with pytest.raises(Exception) as failure:
        loader.run(api_source(slack_api, no_sleep, token="xoxb-wrong-secret"))
    text = error_text(failure.value)
    assert "invalid_auth" in text and "SLACK_BOT_TOKEN" in text and "xoxb-wrong-secret" not in text
    slack_api.api.fail("/users.list", 401, body={"ok": False, "error": "not_authed"})
    with pytest.raises(Exception) as failure:
        loader.run(api_source(slack_api, no_sleep), name="http401")
    assert "401" in error_text(failure.value)
    with pytest.raises(Exception) as failure:
        loader.run(api_source(slack_api, no_sleep, channels=["nope"]), name="unknown")
    assert "nope" in error_text(failure.value) and "general" in error_text(failure.value)
    assert no_sleep == []


def test_named_channels_and_day_window(slack_api, loader, no_sleep):
    seed(slack_api)
    start = slack_api.base + 55  # after the help question, before the general messages at +100 and +200
    loader.run(api_source(slack_api, no_sleep, channels=["general", "#help"], oldest=start, latest=start + 200))
    assert loader.rows("select text from raw.messages order by ts") == [
        ("[io] dayfirst = true",), ("community call thursday",), ("0.9.0 is out",)]
    # Only an end: everything before it, and Slack is not asked for an `oldest` at all.
    slack_api.api.requests.clear()
    loader.run(api_source(slack_api, no_sleep, latest=slack_api.base + 55), name="until", dataset="until")
    assert loader.rows("select count(*) from until.messages") == [(5,)]
    assert all("oldest" not in r["query"] for r in slack_api.api.requests)


def test_sample_export_loads_offline(loader):
    source = slack_source()
    loader.run(source)
    assert loader.rows("select count(*) from raw.channels") == [(4,)]
    assert loader.rows("select count(*), sum(is_bot::int), sum(deleted::int) from raw.users") == [(47, 1, 1)]
    assert loader.rows("select count(*), sum(is_reply::int), count(distinct channel) from raw.messages") == \
        [(186, 113, 4)]
    assert loader.rows("select count(*) from raw.messages m join raw.channels c on m.channel = c.id "
                       "and m.channel_name = c.name") == [(186,)]
    # every reply's parent is loaded too
    assert loader.rows("select count(*) from raw.messages r left join raw.messages p on p.channel = r.channel "
                       "and p.ts = r.thread_ts where r.is_reply and p.ts is null") == [(0,)]
    assert source.skipped.total == 0 and source.skipped.filtered["housekeeping"] == 59


def test_day_window_on_the_sample(loader):
    loader.run(slack_source(channels=["help"], oldest="2026-06-09", latest="2026-06-10"))
    rows = loader.rows("select min(created_at), max(created_at), count(*) from raw.messages")
    assert rows[0][2] == 5 and rows[0][0].day == rows[0][1].day == 9
    loader.run(slack_source(oldest="2027-01-01", latest="2027-01-02"), name="empty", dataset="empty")
    assert loader.rows("select count(*) from empty.messages") == [(0,)]


def test_loading_twice_keeps_one_row_per_message(loader):
    loader.run(slack_source())
    loader.run(slack_source())
    assert loader.rows("select count(*), count(distinct (channel, ts)) from raw.messages") == [(186, 186)]
    assert loader.rows("select count(*) from raw.users") == [(47,)]


def write_bad_export(root):
    (root / "general").mkdir(parents=True)
    (root / "help").mkdir()
    (root / "channels.json").write_text(json.dumps([{"id": "C1", "name": "general"}, {"id": "C2", "name": "help"},
                                                    {"id": "C9"}]))
    (root / "users.json").write_text(json.dumps([{"id": "U1", "name": "ana"}, {"name": "no id"}]))
    (root / "general" / "2026-05-04.json").write_text(json.dumps([
        {"type": "message", "user": "U1", "text": "hello", "ts": "1777900000.000100"},
        {"type": "message", "user": "U1", "text": "no ts"},
        {"type": "message", "user": "U1", "text": "bad ts", "ts": "soon"},
        {"type": "message", "subtype": "channel_join", "user": "U1", "text": "joined", "ts": "1777900001.000000"},
        ["not", "a", "message"],
    ]))
    (root / "general" / "2026-05-05.json").write_bytes(b'[{"text": "d\xe9j\xe0 vu", "ts": "1777990000.000000"}]')
    (root / "general" / "2026-05-06.json").write_text("")
    (root / "help" / "2026-05-04.json").write_text('[{"type": "message", "text": "cut off", "ts": "17779')
    (root / "help" / "2026-05-07.json").write_text(json.dumps([{"type": "message", "text": "fine",
                                                                "ts": "1778150000.000000"}]))
    (root / "help" / "notes.txt").write_text("not an export file")


def test_bad_export_records_are_skipped_and_counted(tmp_path, loader, caplog):
    write_bad_export(tmp_path / "export")
    source = slack_source(export_path=tmp_path / "export")
    with caplog.at_level(logging.WARNING):
        loader.run(source)
    # The Latin-1 day file is kept, its two bad bytes replaced, rather than losing the day.
    assert loader.rows("select text from raw.messages order by ts") == [("hello",), ("d\ufffdj\ufffd vu",), ("fine",)]
    assert loader.rows("select id from raw.users") == [("U1",)]
    assert dict(source.skipped.counts) == {"missing_fields": 3, "bad_timestamp": 1, "not_an_object": 1,
                                           "empty_file": 1, "malformed_json": 1}
    assert dict(source.skipped.repaired) == {"not_utf8": 1}
    assert source.skipped.filtered["housekeeping"] == 1
    assert "2026-05-05.json" in caplog.text


def test_missing_export_is_a_clear_error(tmp_path, loader):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        slack_export_path(missing)
    with pytest.raises(Exception) as failure:
        loader.run(slack_source(export_path=missing))
    assert str(missing) in error_text(failure.value) and "REFERENCE_ARCH_SLACK_EXPORT" in error_text(failure.value)
    # An empty export is an empty source; channel folders without channels.json are a broken export.
    (tmp_path / "empty").mkdir()
    loader.run(slack_source(export_path=tmp_path / "empty"), name="empty", dataset="empty_export")
    assert loader.rows("select count(*) from empty_export.messages") == [(0,)]
    (tmp_path / "broken" / "general").mkdir(parents=True)
    with pytest.raises(Exception) as failure:
        loader.run(slack_source(export_path=tmp_path / "broken"), name="broken")
    assert "channels.json" in error_text(failure.value)


def test_slack_timestamps():
    assert to_slack_ts("2026-05-05T16:53:20Z") == "1778000000.000000"
    assert to_slack_ts("1778000000.000100") == "1778000000.000100"
    assert to_slack_ts(None) is None


# 2026-06-01 09:00 UTC and later that day; 2026-06-02 09:00 UTC.
D1, D2 = 1780304400, 1780390800


def write_workspace(root, day1: list[dict], day2: list[dict] | None = None):
    (root / "help").mkdir(parents=True, exist_ok=True)
    (root / "general").mkdir(exist_ok=True)
    (root / "channels.json").write_text(json.dumps([{"id": "C1", "name": "help"}, {"id": "C2", "name": "general"}]))
    (root / "users.json").write_text(json.dumps([{"id": "U1", "name": "ana"}]))
    (root / "help" / "2026-06-01.json").write_text(json.dumps(day1))
    if day2 is not None:
        (root / "help" / "2026-06-02.json").write_text(json.dumps(day2))


def msg(ts, text, **extra):
    return {"type": "message", "user": "U1", "text": text, "ts": f"{ts}.000100", **extra}


def test_a_lone_surrogate_in_a_message_is_repaired(tmp_path, loader):
    write_workspace(tmp_path / "ws", [msg(D1, "ok")])
    day = tmp_path / "ws" / "help" / "2026-06-01.json"
    day.write_text(day.read_text()[:-1] + ', {"type": "message", "text": "party \\ud83c", "ts": "1780304500.0"}]')
    source = slack_source(export_path=tmp_path / "ws")
    loader.run(source)
    assert loader.rows("select text from raw.messages order by ts") == [("ok",), ("party \ufffd",)]
    assert source.skipped.as_metadata()["repaired_lone_surrogate"] == 1


def test_the_newest_edit_of_a_message_wins(tmp_path, loader):
    edited = msg(D1, "fixed typo", edited={"user": "U1", "ts": f"{D1 + 60}.000000"})
    write_workspace(tmp_path / "ws", [edited, msg(D1, "fixd typo")])  # the edit first, the original after
    loader.run(slack_source(export_path=tmp_path / "ws", oldest="2026-06-01", latest="2026-06-02"))
    assert loader.rows("select text, updated_at > created_at from raw.messages") == [("fixed typo", True)]


def test_a_reloaded_day_drops_deleted_messages_and_tombstones(tmp_path, loader):
    """Issue 12.3: a reply deleted before a re-export stayed; a deleted parent's tombstone became the text."""
    ws = tmp_path / "ws"
    parent = msg(D1, "where is the cache?", thread_ts=f"{D1}.000100", reply_count=2)
    replies = [msg(D1 + 60, "in ~/.cache", thread_ts=f"{D1}.000100"),
               msg(D1 + 120, "SECRETTOKEN rm -rf /", thread_ts=f"{D1}.000100")]
    write_workspace(ws, [parent, *replies], [msg(D2, "next day")])
    (ws / "general" / "2026-06-01.json").write_text(json.dumps([msg(D1 + 5, "other channel")]))
    window = {"oldest": "2026-06-01", "latest": "2026-06-02"}
    loader.run(slack_source(export_path=ws, oldest="2026-06-01", latest="2026-06-03"))  # days 1 and 2
    assert loader.rows("select count(*) from raw.messages") == [(5,)]

    # Re-exported: the second reply deleted, the parent deleted too (Slack keeps a tombstone for its thread).
    tombstone = {"type": "message", "subtype": "tombstone", "user": "USLACKBOT", "text": "This message was deleted.",
                 "hidden": True, "ts": f"{D1}.000100", "thread_ts": f"{D1}.000100", "reply_count": 1}
    write_workspace(ws, [tombstone, replies[0]])
    source = slack_source(["help"], export_path=ws, **window)
    loader.run(source)
    assert loader.rows("select text from raw.messages order by channel, ts") == [
        ("in ~/.cache",), ("next day",), ("other channel",)]  # day 2 and the other channel untouched
    assert source.skipped.filtered["tombstone"] == 1

    # A day that lost every message is emptied too; the marker rows are never stored.
    write_workspace(ws, [])
    loader.run(slack_source(["help"], export_path=ws, **window))
    assert loader.rows("select text from raw.messages order by channel, ts") == [("next day",), ("other channel",)]
    assert loader.rows("select count(*) from raw.messages where ts like '%#%' or replaced") == [(0,)]

    # A cursor-driven run reads only what is new: it neither deletes nor loses anything.
    (ws / "help" / "2026-06-02.json").write_text(json.dumps([msg(D2, "next day"), msg(D2 + 9, "later")]))
    loader.run(slack_source(["help"], export_path=ws), name="cursor")
    loader.run(slack_source(["help"], export_path=ws), name="cursor")
    assert loader.rows("select text from raw.messages order by channel, ts") == [
        ("next day",), ("later",), ("other channel",)]
