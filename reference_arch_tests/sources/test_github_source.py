"""The GitHub dlt source: against a local server speaking the REST API, and on exports (the sample and bad ones)."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pytest

from reference_arch.sources.github import github_export_path, github_source

from .conftest import GITHUB_TOKEN, T0, error_text, loaded

REPO = "acme/widgets"


def api_source(fake, sleeps, **kwargs):
    kwargs.setdefault("repos", [REPO])
    kwargs.setdefault("token", GITHUB_TOKEN)
    return github_source(base_url=fake.url, sleep=sleeps, backoff=0.01, **kwargs)


def seed(fake):
    fake.add_issue(1, 0, "read_csv ignores null_values", replies=[("maint", "OWNER", "User", "Fixed in 0.8.1!")])
    fake.add_issue(2, 1, "join KeyError", replies=[("ci[bot]", "NONE", "Bot", "coverage 91%"),
                                                   ("user2", "NONE", "User", "same here"),
                                                   ("dev", "MEMBER", "User", "cast first")])
    fake.add_issue(3, 2, "Fix the loader", pr=True, replies=[("dev", "MEMBER", "User", "LGTM")])
    fake.add_issue(4, 3, "Support 3.13?", body=None)
    fake.add_issue(5, 4, "pivot drops rows", replies=[(f"u{i}", "NONE", "User", f"+{i}") for i in range(5)])


def test_api_pages_issues_and_comments(github_api, loader, no_sleep, all_logs):
    seed(github_api)
    source = api_source(github_api, no_sleep)
    loader.run(source)

    issues = loader.rows("select number, is_pull_request, body, repo, labels from raw.issues order by number")
    assert [row[0] for row in issues] == [1, 2, 3, 4, 5]
    assert [row[1] for row in issues] == [False, False, True, False, False]
    assert issues[3][2] == "" and issues[0][3] == REPO and json.loads(issues[0][4]) == ["bug"]
    # Five issues over pages of two: the listing took three requests, following the Link header.
    listing = [r for r in github_api.api.requests if r["path"] == f"/repos/{REPO}/issues"]
    assert [r["query"].get("page") for r in listing] == [None, "2", "3"]
    assert listing[0]["query"]["state"] == "all" and listing[0]["query"]["per_page"] == "100"
    # Comments of issue 5 span three pages; issue 4 has none and was never asked for.
    assert github_api.api.paths(f"/repos/{REPO}/issues/5/comments").__len__() == 3
    assert not github_api.api.paths(f"/repos/{REPO}/issues/4/comments")
    comments = loader.rows("select issue_number, issue_id, user_login, user_type, is_bot, author_association "
                           "from raw.comments where issue_number = 2 order by id")
    assert comments[0] == (2, 100_002, "ci[bot]", "Bot", True, "NONE")
    assert comments[2][2:] == ("dev", "User", False, "MEMBER")
    assert loader.rows("select count(*) from raw.comments") == [(10,)]
    # The token went only into the Authorization header: never into a log line.
    assert all(r["headers"]["Authorization"] == f"Bearer {GITHUB_TOKEN}" for r in github_api.api.requests)
    assert "Making GET request" in all_logs.text and GITHUB_TOKEN not in all_logs.text
    assert source.skipped.total == 0


def test_api_second_run_asks_since_and_loads_only_changes(github_api, loader, no_sleep):
    seed(github_api)
    first = loader.run(api_source(github_api, no_sleep))
    assert loaded(first, "issues") == 5
    last_update = max(i["updated_at"] for i in github_api.issues[REPO])

    github_api.comment(REPO, 4, "maint", "OWNER", "User", "Yes, wheels are up", at=T0 + timedelta(days=10))
    github_api.add_issue(6, 9, "Excel support")  # a new issue
    github_api.api.requests.clear()
    second = loader.run(api_source(github_api, no_sleep))

    listing = [r for r in github_api.api.requests if r["path"] == f"/repos/{REPO}/issues"]
    assert listing[0]["query"]["since"] == last_update
    # The last issue of the first run comes back (since is inclusive) but is deduplicated by the cursor.
    assert loaded(second, "issues") == 2
    assert loader.rows("select count(*), count(distinct id) from raw.issues") == [(6, 6)]
    assert loader.rows("select comment_count from raw.issues where number = 4") == [(1,)]
    assert loader.rows("select count(*), count(distinct id) from raw.comments") == [(11, 11)]


def test_api_retries_rate_limits_and_server_errors(github_api, loader, no_sleep):
    seed(github_api)
    path = f"/repos/{REPO}/issues"
    github_api.api.fail(path, 429, {"Retry-After": "7"})
    reset = int(time.time()) + 30
    github_api.api.fail(path, 403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
                        {"message": "API rate limit exceeded"})
    github_api.api.fail(path, 502)
    loader.run(api_source(github_api, no_sleep))

    assert loader.rows("select count(*) from raw.issues") == [(5,)]
    assert no_sleep[0] == 7  # Retry-After, as asked
    assert 25 <= no_sleep[1] <= 32  # until X-RateLimit-Reset
    assert no_sleep[2] < 1  # exponential backoff from the configured base


def test_api_gives_up_after_bounded_retries(github_api, loader, no_sleep):
    seed(github_api)
    for _ in range(3):
        github_api.api.fail(f"/repos/{REPO}/issues", 503)
    with pytest.raises(Exception) as failure:
        loader.run(api_source(github_api, no_sleep, max_attempts=3))
    assert "503" in error_text(failure.value) and "after 3 attempts" in error_text(failure.value)
    assert len(no_sleep) == 2


def test_api_refuses_a_wait_longer_than_allowed(github_api, loader, no_sleep):
    seed(github_api)
    github_api.api.fail(f"/repos/{REPO}/issues", 403,
                        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 3600)})
    with pytest.raises(Exception) as failure:
        loader.run(api_source(github_api, no_sleep, max_wait=60))
    assert "rate limit exhausted" in error_text(failure.value)
    assert no_sleep == []


def test_api_bad_token_and_unknown_repo_are_clear_errors(github_api, loader, no_sleep):
    seed(github_api)
    with pytest.raises(Exception) as failure:
        loader.run(api_source(github_api, no_sleep, token="ghp_wrong_secret_value"))
    text = error_text(failure.value)
    assert "401" in text and "Bad credentials" in text and "GITHUB_TOKEN" in text
    assert "ghp_wrong_secret_value" not in text
    assert no_sleep == []  # permanent: not retried

    with pytest.raises(Exception) as failure:
        loader.run(api_source(github_api, no_sleep, repos=["acme/nope"]), name="other")
    assert "404" in error_text(failure.value) and "/repos/acme/nope/issues" in error_text(failure.value)


def test_window_loads_exactly_its_range_and_keeps_state(github_api, loader, no_sleep):
    seed(github_api)
    # Issue 2 was updated on day 1 (its comments); the window [day 1, day 3) holds issues 2 and 3.
    window = loader.run(api_source(github_api, no_sleep, since="2026-05-05", until="2026-05-07"))
    assert loader.rows("select list(number order by number) from raw.issues") == [([2, 3],)]
    assert loaded(window, "comments") == 4 + 2  # and one marker per issue, which replaces its stored comments
    # A bounded window leaves the incremental state alone: an open run afterwards loads everything.
    loader.run(api_source(github_api, no_sleep))
    assert loader.rows("select count(*) from raw.issues") == [(5,)]


def test_sample_export_loads_offline(loader):
    source = github_source()  # no token: the sample in the repo
    loader.run(source)
    assert loader.rows("select count(*), sum(is_pull_request::int), count(distinct repo) from raw.issues") == \
        [(59, 7, 1)]
    assert loader.rows("select count(*), sum(is_bot::int) from raw.comments") == [(94, 8)]
    assert loader.rows("select count(*) from raw.comments c join raw.issues i on c.issue_id = i.id "
                       "and c.issue_number = i.number") == [(94,)]
    assert source.skipped.total == 0


def test_month_window_on_creation_time(loader):
    pipeline = loader.run(github_source(since="2026-06-01", until="2026-07-01", window_on="created_at"))
    rows = loader.rows("select min(created_at), max(created_at), count(*) from raw.issues")
    assert rows[0][2] == 11 and rows[0][0].month == rows[0][1].month == 6
    assert loader.rows("select count(*) from raw.comments c left join raw.issues i on c.issue_id = i.id "
                       "where i.id is null") == [(0,)]
    assert loaded(pipeline, "comments") > 0
    # A month without issues still leaves both tables in place, empty, for readers to query.
    loader.run(github_source(since="2027-02-01", until="2027-03-01", window_on="created_at"), name="empty",
               dataset="empty")
    assert loader.rows("select (select count(*) from empty.issues), (select count(*) from empty.comments)") == [(0, 0)]


def test_loading_twice_keeps_one_row_per_id(loader):
    loader.run(github_source())
    loader.run(github_source())
    assert loader.rows("select count(*), count(distinct id) from raw.issues") == [(59, 59)]
    assert loader.rows("select count(*), count(distinct id) from raw.comments") == [(94, 94)]


def write_bad_export(root):
    repo = root / "acme" / "widgets"
    repo.mkdir(parents=True)
    good = [{"id": 1, "number": 1, "title": "ok", "body": "b", "created_at": "2026-05-01T00:00:00Z",
             "updated_at": "2026-05-02T00:00:00Z", "comments": 1},
            {"id": 2, "number": 2, "title": "no body", "body": None, "created_at": "2026-05-03T00:00:00+00:00",
             "updated_at": "2026-05-03T00:00:00+00:00"},
            {"id": 3, "title": "no number", "created_at": "2026-05-03T00:00:00Z", "updated_at": "2026-05-03T00:00:00Z"},
            {"id": 4, "number": 4, "title": "bad time", "created_at": "yesterday", "updated_at": "today"},
            {"id": "abc", "number": 8, "title": "text id", "created_at": "2026-05-03T00:00:00Z",
             "updated_at": "2026-05-03T00:00:00Z"},
            {"id": 7, "number": 7, "title": "odd shapes", "user": "ghost", "comments": [{"id": 1}], "labels": "bug",
             "body": 42, "created_at": "2026-05-03T00:00:00Z", "updated_at": "2026-05-03T00:00:00Z"},
            "not an object"]
    (repo / "issues.json").write_text(json.dumps(good))
    (repo / "issues-2.json").write_text('[{"id": 9, "number": 9, "title": "truncated"')  # malformed file
    (repo / "issues-3.jsonl").write_text(
        json.dumps({"id": 5, "number": 5, "title": "from jsonl", "created_at": "2026-05-04T00:00:00Z",
                    "updated_at": "2026-05-04T00:00:00Z"}) + "\n{not json}\n\n")
    (repo / "issues-4.json").write_bytes(b'[{"id": 6, "title": "caf\xe9"}]')  # latin-1, not UTF-8
    (repo / "issues-5.json").write_text("  \n")  # empty
    (repo / "comments.json").write_text(json.dumps([
        {"id": 10, "issue_url": "https://api.github.com/repos/acme/widgets/issues/1", "body": "hi",
         "user": {"login": "m", "type": "User"}, "author_association": "OWNER", "created_at": "2026-05-01T01:00:00Z"},
        {"id": 11, "body": "which issue?", "created_at": "2026-05-01T01:00:00Z"},
        {"issue_url": "https://api.github.com/repos/acme/widgets/issues/1", "body": "no id"},
    ]))


def test_bad_export_records_are_skipped_and_counted(tmp_path, loader, caplog):
    write_bad_export(tmp_path / "export")
    source = github_source(export_path=tmp_path / "export")
    with caplog.at_level(logging.WARNING):
        loader.run(source)
    assert loader.rows("select list(number order by number) from raw.issues") == [([1, 2, 5, 7],)]
    assert loader.rows("select user_login, comment_count, labels, body from raw.issues where number = 7") == \
        [(None, 1, "[]", "42")]
    assert loader.rows("select id, updated_at is not null from raw.comments") == [(10, True)]
    # The Latin-1 file is decoded with U+FFFD for its bad byte; its record then lacks required fields.
    assert dict(source.skipped.counts) == {"missing_fields": 4, "bad_timestamp": 1, "not_an_object": 1, "bad_id": 1,
                                           "malformed_json": 2, "empty_file": 1}
    assert dict(source.skipped.repaired) == {"not_utf8": 1}
    assert source.skipped.as_metadata()["skipped"] == 10
    assert "issues-2.json" in caplog.text and "skipped bad input" in caplog.text


def test_missing_export_is_a_clear_error(tmp_path, loader):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        github_export_path(missing)
    with pytest.raises(Exception) as failure:
        loader.run(github_source(export_path=missing))
    assert str(missing) in error_text(failure.value) and "REFERENCE_ARCH_GITHUB_EXPORT" in error_text(failure.value)
    with pytest.raises(Exception) as failure:
        loader.run(github_source(repos=["acme/other"]), name="other")
    assert "acme/other" in error_text(failure.value) and "tidepool-data/tidepool" in error_text(failure.value)
    (tmp_path / "empty").mkdir()  # an empty export is an empty source
    loader.run(github_source(export_path=tmp_path / "empty"), name="empty", dataset="empty_export")
    assert loader.rows("select count(*) from empty_export.issues") == [(0,)]


def test_export_path_from_the_environment(tmp_path, loader, monkeypatch):
    write_bad_export(tmp_path / "export")
    monkeypatch.setenv("REFERENCE_ARCH_GITHUB_EXPORT", str(tmp_path / "export"))
    loader.run(github_source())
    assert loader.rows("select count(*) from raw.issues") == [(4,)]


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="owner/name"):
        github_source(repos=["widgets"])
    with pytest.raises(ValueError, match="repos"):
        github_source(token="t")
    with pytest.raises(ValueError, match="window_on"):
        github_source(window_on="closed_at")


def _issue(id_, number, title, updated, body="b", comments=0):
    return {"id": id_, "number": number, "title": title, "body": body, "created_at": "2026-06-01T09:00:00Z",
            "updated_at": updated, "comments": comments, "user": {"login": "u", "type": "User"}}


def test_a_lone_surrogate_is_repaired_not_fatal(tmp_path, loader, github_api, no_sleep):
    """Issue 12.1: JSON text ending in an escaped lone surrogate ("\\ud83d", half an emoji) failed the
    whole load with "str is not valid UTF-8: surrogates not allowed"; now the record is repaired and counted."""
    repo = tmp_path / "export" / REPO
    repo.mkdir(parents=True)
    (repo / "issues.json").write_text(
        '[' + json.dumps(_issue(1, 1, "fine", "2026-06-01T10:00:00Z", comments=1)) + ','
        + json.dumps(_issue(2, 2, "emoji", "2026-06-01T11:00:00Z")).replace('"body": "b"', '"body": "nice \\ud83d"')
        + ']')
    (repo / "comments.json").write_text('[{"id": 7, "issue_url": "x/issues/1", "body": "\\ud83d\\ude00 ok \\ude00",'
                                        ' "created_at": "2026-06-01T10:00:00Z"}]')
    source = github_source(export_path=tmp_path / "export", since="2026-06-01", until="2026-06-02")
    loader.run(source)
    assert loader.rows("select number, body from raw.issues order by number") == [(1, "b"), (2, "nice \ufffd")]
    assert loader.rows("select body from raw.comments") == [("\U0001F600 ok \ufffd",)]  # the pair stays an emoji
    assert source.skipped.as_metadata()["repaired_lone_surrogate"] == 2

    # The API path: the server's JSON holds the same escape.
    github_api.add_issue(3, 0, "from the api", body="tail \ud83d")
    api = api_source(github_api, no_sleep)
    loader.run(api, name="api", dataset="api")
    assert loader.rows("select body from api.issues") == [("tail \ufffd",)]
    assert api.skipped.repaired["lone_surrogate"] == 1


def test_the_newest_version_of_an_issue_wins_whatever_the_order(tmp_path, loader, github_api, no_sleep):
    """Issue 12.2: the same issue on two pages (older first, as update-sorted paging gives) kept OLD."""
    repo = tmp_path / "export" / REPO
    repo.mkdir(parents=True)
    (repo / "issues.json").write_text(json.dumps([_issue(9, 9, "OLD", "2026-06-02T10:00:00Z")]))
    (repo / "issues-2.json").write_text(json.dumps([_issue(9, 9, "NEW", "2026-06-03T10:00:00Z")]))
    export = tmp_path / "export"
    loader.run(github_source(export_path=export))
    assert loader.rows("select title from raw.issues") == [("NEW",)]
    # Day partitions in any order: the older day never brings OLD back.
    for day, until in (("2026-06-03", "2026-06-04"), ("2026-06-02", "2026-06-03")):
        loader.run(github_source(export_path=export, since=day, until=until), name="days", dataset="days")
        assert loader.rows("select title from days.issues") == [("NEW",)]
    # By creation month (the finetune location's window): one load holding both versions.
    loader.run(github_source(export_path=export, since="2026-06-01", until="2026-07-01", window_on="created_at"),
               name="month", dataset="month")
    assert loader.rows("select title from month.issues") == [("NEW",)]

    # The API: the issue is updated while it is being listed and comes back on the next page.
    old = github_api.add_issue(9, 0, "OLD")
    github_api.issues[REPO].append({**old, "title": "NEW", "updated_at": "2026-05-04T12:00:00Z"})
    loader.run(api_source(github_api, no_sleep), name="api", dataset="api")
    assert loader.rows("select title from api.issues") == [("NEW",)]


def test_a_deleted_comment_leaves_with_the_next_load_of_its_issue(tmp_path, loader):
    repo = tmp_path / "export" / REPO
    repo.mkdir(parents=True)
    (repo / "issues.json").write_text(json.dumps([_issue(1, 1, "q", "2026-06-01T10:00:00Z", comments=2)]))
    comment = {"issue_url": "x/issues/1", "created_at": "2026-06-01T10:00:00Z", "user": {"login": "m"}}
    (repo / "comments.json").write_text(json.dumps([{**comment, "id": 5, "body": "keep"},
                                                    {**comment, "id": 6, "body": "spam"}]))
    window = {"export_path": tmp_path / "export", "since": "2026-06-01", "until": "2026-06-02"}
    loader.run(github_source(**window))
    (repo / "comments.json").write_text(json.dumps([{**comment, "id": 5, "body": "keep"}]))
    loader.run(github_source(**window))
    assert loader.rows("select id, body from raw.comments") == [(5, "keep")]
    (repo / "comments.json").write_text("[]")  # every comment deleted
    loader.run(github_source(**window))
    assert loader.rows("select count(*) from raw.comments") == [(0,)]
