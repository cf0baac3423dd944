"""The instance on Postgres, for real: docker/dagster.yaml pointed at a database made for this test
run. Runs when a server is found (``DAGSTER_PG_URL``, ``DAGSTER_POSTGRES_*``, or one accepting connections at
127.0.0.1:5432), as in CI (.ci/prepare); skips with one line otherwise."""

from __future__ import annotations

import importlib
import logging

import dagster as dg
import pytest

from reference_arch.cli.answers import ask
from reference_arch.common.locations import LOCATIONS
from reference_arch.common.questions import question_run_config
from reference_arch_tests.production.conftest import build_rag_index

QUESTION_JOBS = {"prompt": "prompt_question_job", "rag": "rag_question_job"}
QUESTIONS = {"prompt": "What is a series?", "rag": "How do I rename the index of a Series?"}


def location_defs(location: str) -> dg.Definitions:
    return importlib.import_module(f"reference_arch.{location}.definitions").defs


def has_job(location: str, job_name: str) -> bool:
    return any(job.name == job_name for job in location_defs(location).jobs or [])


def test_instance_storage_is_postgres(pg_instance):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(pg_instance.schedule_storage, PostgresScheduleStorage)
    assert pg_instance.event_log_storage.supports_global_concurrency_limits
    assert type(pg_instance.run_coordinator).__name__ == "QueuedRunCoordinator"


def test_partitioned_asset_materializes_on_postgres(pg_instance):
    from reference_arch.prompt.defs import prompt

    templates = dg.materialize([prompt.template], partition_key="pandas", instance=pg_instance)
    assert templates.success
    template_key = dg.AssetKey(["prompt", "template"])
    assert pg_instance.get_materialized_partitions(template_key) == {"pandas"}
    record = pg_instance.fetch_materializations(template_key, limit=1).records[0]
    assert record.run_id == templates.run_id and record.partition_key == "pandas"

    result = dg.materialize([prompt.question, prompt.prompt], instance=pg_instance,
                            run_config=question_run_config("prompt", "What is a DataFrame?"))
    assert result.success
    record = pg_instance.fetch_materializations(dg.AssetKey(["prompt", "prompt"]), limit=1).records[0]
    metadata = record.asset_materialization.metadata
    assert record.run_id == result.run_id and metadata["template"].value == "pandas"
    assert "What is a DataFrame\\?" in metadata["prompt"].value  # Markdown-escaped, shown as text
    assert pg_instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS


@pytest.mark.parametrize("location", list(QUESTION_JOBS))
def test_question_job_answers_on_postgres(location, pg_instance, registry_with_tiny_model, rag_exports):
    job_name = QUESTION_JOBS[location]
    if not has_job(location, job_name):
        pytest.skip(f"the {location} location has no {job_name} yet")
    if location == "rag":  # the index it reads, with its daily ingestion partitions, on Postgres
        build_rag_index(pg_instance)
        assert {"2026-06-01", "2026-06-02"} <= pg_instance.get_materialized_partitions(
            dg.AssetKey(["rag", "github_issues"]))
    record = ask(location, QUESTIONS[location], pg_instance)
    assert isinstance(record["answer"], str) and record["model"]  # the tiny random model may say nothing

    # The answer is stored in Postgres as the UI shows it: Markdown, with token counts as numbers.
    answer_key = dg.AssetKey([location, "answer"])
    stored = pg_instance.fetch_materializations(answer_key, limit=1).records[0]
    assert stored.run_id == record["run_id"]
    metadata = stored.asset_materialization.metadata
    assert isinstance(metadata["answer"], dg.MarkdownMetadataValue)
    from reference_arch.common.questions import markdown_text

    assert markdown_text(record["answer"].strip()) in metadata["answer"].value  # shown as text, never as markup
    if location == "rag":  # offline, the RAG answer is extractive: no LLM call, so no tokens
        assert metadata["answerer"].value == "extractive" and "llm/prompt_tokens" not in metadata
    else:
        assert isinstance(metadata["llm/prompt_tokens"].value, int) and metadata["llm/prompt_tokens"].value > 0
    if location == "rag":  # sources as table metadata, best first
        assert record["sources"] and isinstance(metadata["sources"], dg.TableMetadataValue)
    assert pg_instance.get_run_by_id(record["run_id"]).status == dg.DagsterRunStatus.SUCCESS


def sensor_origins():
    """An in-process code location for every location that defines a sensor."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    return [
        InProcessCodeLocationOrigin(
            LoadableTargetOrigin(module_name=f"reference_arch.{location}.definitions", attribute="defs"),
            location_name=location,
        )
        for location in LOCATIONS
        if location_defs(location).sensors
    ]


def test_sensor_ticks_are_recorded_on_postgres(pg_instance, registry_with_tiny_model, rag_exports):
    """One tick of every sensor, evaluated by the daemon's own loops against the Postgres instance
    (the sensor daemon's, and the asset daemon's for automation-condition sensors): the tick, its
    cursor, the dynamic partitions it adds and the runs it queues land in Postgres."""
    from dagster._core.scheduler.instigation import TickStatus
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.asset_daemon import AssetDaemon
    from dagster._daemon.sensor import execute_sensor_iteration

    origins = sensor_origins()
    if not origins:
        pytest.skip("no location defines a sensor yet")
    target = InProcessWorkspaceLoadTarget(origins)
    with create_test_daemon_workspace_context(target, pg_instance) as workspace:
        request_context = workspace.create_request_context()
        sensors = [
            sensor
            for origin in origins
            for repository in request_context.get_code_location(origin.location_name).get_repositories().values()
            for sensor in repository.get_sensors()
        ]
        for sensor in sensors:
            pg_instance.start_sensor(sensor)
        list(execute_sensor_iteration(workspace, logging.getLogger("sensor-test"), None, None))
        if any(sensor.sensor_type.is_handled_by_asset_daemon for sensor in sensors):
            AssetDaemon(settings={}, pre_sensor_interval_seconds=0)._run_iteration_impl(
                workspace, threadpool_executor=None, amp_tick_futures={}, debug_crash_flags={})

    for sensor in sensors:
        ticks = pg_instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)
        assert len(ticks) == 1, f"{sensor.name}: {len(ticks)} ticks"
        tick = ticks[0]
        assert tick.status in (TickStatus.SUCCESS, TickStatus.SKIPPED), f"{sensor.name}: {tick.status} {tick.error}"
        for run_id in tick.run_ids:  # queued in Postgres for the daemon to launch
            assert pg_instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.QUEUED
