"""Ingestion assets: the same assets as dagster-dlt's @dlt_assets, the API path, clear errors, and
concurrent loads into one warehouse that lose nothing."""

import dagster as dg
import pytest

from reference_arch.rag import warehouse
from reference_arch.rag.config import rag_dir
from reference_arch.rag.defs import ingestion
from reference_arch_tests.rag.conftest import DAY1, DAY2, range_tags
from reference_arch_tests.sources.conftest import GITHUB_TOKEN, FakeGitHub
from reference_arch_tests.workers import materialize_at_once, watch_lock


@pytest.mark.parametrize("source_name", ["github", "slack", "docs"])
def test_assets_match_dagster_dlt(rag_data, source_name):
    """The declared specs are what @dlt_assets builds from the real source with our translator."""
    from dagster_dlt import DagsterDltResource, dlt_assets

    from reference_arch.sources.docs import docs_source
    from reference_arch.sources.github import github_source
    from reference_arch.sources.slack import slack_source

    source = {"github": github_source, "slack": slack_source, "docs": docs_source}[source_name]()
    ours = {"github": ingestion.github_assets, "slack": ingestion.slack_assets, "docs": ingestion.docs_assets}[source_name]

    @dlt_assets(dlt_source=source, dlt_pipeline=warehouse.pipeline(source_name),
                dagster_dlt_translator=ingestion.translator(), partitions_def=ours.partitions_def)
    def reference(context: dg.AssetExecutionContext, dlt: DagsterDltResource):  # pragma: no cover - never run
        yield from dlt.run(context=context)

    assert set(reference.keys) == set(ours.keys)
    for key in ours.keys:
        theirs, mine = reference.specs_by_key[key], ours.specs_by_key[key]
        assert (theirs.kinds, theirs.group_name, theirs.owners, theirs.description) == (
            mine.kinds, mine.group_name, mine.owners, mine.description)
        assert {d.asset_key for d in theirs.deps} == {d.asset_key for d in mine.deps}


def test_github_from_the_api(rag_data, instance, monkeypatch):
    api = FakeGitHub()
    try:
        api.add_issue(1, day=1, title="Parser fails on tabs", replies=[("maya", "OWNER", "User", "Use sep='\\t'.")])
        api.add_issue(2, day=3, title="Outside the window")
        monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
        monkeypatch.setenv("REFERENCE_ARCH_GITHUB_REPOS", "acme/widgets")
        monkeypatch.setenv("REFERENCE_ARCH_GITHUB_API_URL", api.url)
        result = dg.materialize([ingestion.github_assets], instance=instance, partition_key="2026-05-05")
        assert result.success
        issues = warehouse.read_table("github", "issues")
        assert [i["number"] for i in issues] == [1]
        assert [c["body"] for c in warehouse.read_table("github", "comments")] == ["Use sep='\\t'."]

        monkeypatch.setenv("GITHUB_TOKEN", "ghp_revoked_secret_987")
        failed = dg.materialize([ingestion.github_assets], instance=instance, partition_key="2026-05-05",
                                raise_on_error=False)
        message = _failure(failed)
        assert "401" in message and "GITHUB_TOKEN" in message and "ghp_revoked_secret_987" not in message
        assert len(warehouse.read_table("github", "issues")) == 1  # what was loaded stays

        monkeypatch.delenv("REFERENCE_ARCH_GITHUB_REPOS")
        failed = dg.materialize([ingestion.github_assets], instance=instance, partition_key="2026-05-05",
                                raise_on_error=False)
        assert "REFERENCE_ARCH_GITHUB_REPOS" in _failure(failed)
    finally:
        api.api.close()


def test_reloading_a_partition_is_idempotent(rag_data, instance):
    for _ in range(2):
        assert dg.materialize([ingestion.github_assets, ingestion.slack_assets], instance=instance,
                              tags=range_tags(DAY1, DAY2)).success
    issues = warehouse.read_table("github", "issues")
    assert sorted(i["id"] for i in issues) == [101, 102]
    messages = warehouse.read_table("slack", "messages")
    assert len(messages) == 2 and len({(m["channel"], m["ts"]) for m in messages}) == 2


def daily_ingestion_job():
    from reference_arch.rag.definitions import defs

    return defs.resolve_job_def("rag_daily_ingestion_job")


def test_concurrent_loads_lose_no_writes(rag_data, tmp_path):
    """GitHub and Slack of one range in parallel processes (the multiprocess executor), then two
    partitions in two processes at once: every record of every load lands in the one DuckDB file."""
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        result = dg.execute_job(dg.reconstructable(daily_ingestion_job), instance=instance,
                                tags=range_tags(DAY1, DAY2))
        assert result.success
        steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
        assert steps == {"rag_github", "rag_slack"}
        assert any(e.event_type_value == "ENGINE_EVENT" and "multiprocess" in (e.message or "").lower()
                   for e in result.all_events)
    assert len(warehouse.read_table("github", "issues")) == 2
    assert len(warehouse.read_table("slack", "messages")) == 2

    materialize_at_once("reference_arch.rag.defs.ingestion", ["github_assets"], [DAY1, DAY2], tmp_path)
    assert sorted(i["number"] for i in warehouse.read_table("github", "issues")) == [1, 2]


def test_pipelines_are_built_and_the_warehouse_opened_under_the_lock(rag_data, instance, monkeypatch):
    """Building a dlt pipeline reads, and may wipe and recreate, its working folder, which another
    process's load of the same source is using (dagster-dlt drops and recreates it before each
    load): built outside the lock, a CI run's second partition load failed with FileExistsError."""
    from reference_arch.common.warehouse_lock import lock_path

    seen = watch_lock(monkeypatch, lock_path(rag_dir()))
    assert dg.materialize([ingestion.github_assets], instance=instance, partition_key=DAY1).success
    assert [i["number"] for i in warehouse.read_table("github", "issues")] == [1]
    assert {what for what, _ in seen} == {"pipeline", "connect"}
    assert [(what, held) for what, held in seen if not held] == []


def _failure(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            return (data.user_failure_data.description if data.user_failure_data else "") + (
                data.error.message if data.error else "")
    return ""
