"""Sensors, schedule and declarative automation of the rag location, with build_sensor_context."""

import json
from datetime import datetime, timezone

import dagster as dg

from reference_arch.rag.defs import automation
from reference_arch_tests.rag.conftest import DAY1, DAY2, REPO, run_ingestion
from reference_arch_tests.sources.conftest import GITHUB_TOKEN, FakeGitHub


def tick(sensor, instance, cursor=None):
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_docs_sensor_follows_content_not_mtimes(rag_data, instance):
    docs = rag_data["docs"]
    first = tick(automation.rag_docs_sensor, instance)
    [added] = first.dynamic_partitions_requests
    assert set(added.partition_keys) == {"package:json", "dir:.", "dir:guides"}
    assert {r.partition_key for r in first.run_requests} == set(added.partition_keys)
    instance.add_dynamic_partitions("rag_docs", list(added.partition_keys))

    quiet = tick(automation.rag_docs_sensor, instance, first.cursor)
    assert not quiet.run_requests and not quiet.dynamic_partitions_requests

    (docs / "index.md").write_text((docs / "index.md").read_text())  # touched, same bytes
    assert not tick(automation.rag_docs_sensor, instance, first.cursor).run_requests

    (docs / "guides" / "charts.md").write_text("# Charts\n\nRewritten.")
    changed = tick(automation.rag_docs_sensor, instance, first.cursor)
    assert [r.partition_key for r in changed.run_requests] == ["dir:guides"]

    (docs / "guides" / "cli.rst").unlink()
    deleted = tick(automation.rag_docs_sensor, instance, changed.cursor)
    assert [r.partition_key for r in deleted.run_requests] == ["dir:guides"]

    (docs / "api").mkdir()
    (docs / "api" / "ref.md").write_text("# Reference")
    for path in (docs / "guides").iterdir():
        path.unlink()
    (docs / "guides").rmdir()
    moved = tick(automation.rag_docs_sensor, instance, deleted.cursor)
    assert moved.dynamic_partitions_requests[0].partition_keys == ["dir:api"]
    keys = {r.partition_key: r.run_key for r in moved.run_requests}
    assert set(keys) == {"dir:api", "dir:guides"} and ":gone:" in keys["dir:guides"]  # reloaded empty

    assert not json.loads(moved.cursor)["fingerprints"].get("dir:guides")


def test_docs_sensor_runs_a_revert(rag_data, instance):
    """12.5: a page edited A -> B -> A: the third tick's run key equalled the first's, so the daemon skipped
    it and the warehouse kept B. Every change of content is a new run key."""
    page = rag_data["docs"] / "guides" / "charts.md"
    first = tick(automation.rag_docs_sensor, instance)
    instance.add_dynamic_partitions("rag_docs", list(first.dynamic_partitions_requests[0].partition_keys))
    used = {r.run_key for r in first.run_requests}
    cursor, original = first.cursor, page.read_text()
    for text in ("# Charts\n\nRewritten: B.", original, "# Charts\n\nRewritten: B."):
        page.write_text(text)
        result = tick(automation.rag_docs_sensor, instance, cursor)
        [request] = result.run_requests
        assert request.partition_key == "dir:guides" and request.run_key not in used
        used.add(request.run_key)
        cursor = result.cursor
    assert not tick(automation.rag_docs_sensor, instance, cursor).run_requests  # unchanged: nothing

    # A cursor written before the counter (the fingerprints alone) still works.
    old_cursor = json.dumps(json.loads(cursor)["fingerprints"])
    page.write_text(original)
    [request] = tick(automation.rag_docs_sensor, instance, old_cursor).run_requests
    assert request.partition_key == "dir:guides"


def test_github_sensor_polls_the_export_with_a_cursor(rag_data, instance):
    first = tick(automation.rag_github_sensor, instance)
    [request] = first.run_requests
    assert request.tags["dagster/asset_partition_range_start"] == DAY1
    assert request.tags["dagster/asset_partition_range_end"] == DAY2
    assert first.cursor.startswith(DAY2)
    assert isinstance(tick(automation.rag_github_sensor, instance, first.cursor), dg.SkipReason)
    # the range request runs as one run over those days (what the daemon would launch)
    from reference_arch.rag import warehouse
    from reference_arch.rag.definitions import defs

    assert defs.resolve_job_def("rag_github_job").execute_in_process(instance=instance, tags=request.tags).success
    assert sorted(i["number"] for i in warehouse.read_table("github", "issues")) == [1, 2]

    issues_path = rag_data["github"] / REPO / "issues.json"
    issues = json.loads(issues_path.read_text())
    issues[0]["updated_at"] = "2026-06-05T08:00:00Z"  # a new comment on the old issue
    issues_path.write_text(json.dumps(issues))
    later = tick(automation.rag_github_sensor, instance, first.cursor)
    assert [r.partition_key for r in later.run_requests] == ["2026-06-05"]
    assert later.cursor.startswith("2026-06-05")


def test_github_sensor_polls_the_api(rag_data, instance, monkeypatch):
    api = FakeGitHub()
    try:
        for number in range(1, 6):  # more issues than a page: the sensor follows Link headers
            api.add_issue(number, day=number, title=f"issue {number}")
        monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
        monkeypatch.setenv("REFERENCE_ARCH_GITHUB_REPOS", "acme/widgets")
        monkeypatch.setenv("REFERENCE_ARCH_GITHUB_API_URL", api.url)
        result = tick(automation.rag_github_sensor, instance)
        [request] = result.run_requests
        assert request.tags["dagster/asset_partition_range_start"] == "2026-05-05"
        assert request.tags["dagster/asset_partition_range_end"] == "2026-05-09"
        assert any(r["query"].get("page") == "3" for r in api.api.requests)
        assert GITHUB_TOKEN not in result.cursor

        api.add_issue(6, day=10, title="new")
        again = tick(automation.rag_github_sensor, instance, result.cursor)
        assert [r.partition_key for r in again.run_requests] == ["2026-05-14"]
        assert api.api.requests[-1]["query"]["since"] == result.cursor

        monkeypatch.setenv("GITHUB_TOKEN", "wrong")
        refused = tick(automation.rag_github_sensor, instance, again.cursor)
        assert isinstance(refused, dg.SkipReason) and "401" in refused.skip_message
        assert "wrong" not in refused.skip_message
    finally:
        api.api.close()


def test_daily_schedule_loads_yesterday(rag_data, instance):
    context = dg.build_schedule_context(instance=instance,
                                        scheduled_execution_time=datetime(2026, 6, 3, 1, 0, tzinfo=timezone.utc))
    request = automation.rag_daily_schedule(context)
    assert request.partition_key == DAY2


def test_processing_follows_ingestion_by_automation_condition(rag_data, instance):
    from reference_arch.rag.definitions import defs

    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0  # nothing ingested yet
    run_ingestion(instance, days=(DAY1,))
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    # the whole chain is requested in one tick (each asset after an update its parent will make)
    for name in ("documents", "chunks", "embeddings", "vector_index", "retrieval_evaluation"):
        assert result.get_num_requested(dg.AssetKey(["rag", name])) == 1, name
    for name in ("question", "retrieved_sources", "answer"):  # the question job runs on demand only
        assert result.get_num_requested(dg.AssetKey(["rag", name])) == 0, name
