"""Concurrency pools: two training steps (pool `gpu`) never run at once, on a real instance
(SQLite with the repo's dagster.yaml, and Postgres with docker/dagster.yaml when configured),
with the multiprocess executor that would otherwise run them side by side."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from reference_arch.common.pools import GPU_POOL, OPENAI_POOL, POOL_LIMITS, apply_pool_limits
from reference_arch_tests.production import pool_steps


def run_two_steps(instance: dg.DagsterInstance, job_fn, log: Path, patience_s: float) -> dict:
    job = dg.reconstructable(job_fn)
    name = job_fn().name
    config = {"ops": {f"train_{s}_{name.rsplit('_', 1)[-1]}": {"config": {"patience_s": patience_s}} for s in "ab"}}
    result = dg.execute_job(job, instance=instance, run_config=config)
    assert result.success
    return pool_steps.intervals(log)


def overlap(spans: dict) -> bool:
    (a_start, a_end), (b_start, b_end) = spans["a"], spans["b"]
    return a_start < b_end and b_start < a_end


@pytest.fixture
def pool_log(tmp_path, monkeypatch) -> Path:
    log = tmp_path / "steps.log"
    log.touch()
    monkeypatch.setenv(pool_steps.LOG_ENV, str(log))
    return log


@pytest.fixture
def sqlite_instance(tmp_home):
    """The laptop instance: the repo's dagster.yaml (SQLite) in a fresh DAGSTER_HOME."""
    from reference_arch.common.settings import write_instance_config

    write_instance_config(Path(os.environ["DAGSTER_HOME"]))  # what `reference-arch` writes there
    with dg.DagsterInstance.get() as instance:
        yield instance


def test_pool_limits_are_written_into_the_instance(sqlite_instance):
    apply_pool_limits(sqlite_instance)
    limits = {p.name: p.limit for p in sqlite_instance.event_log_storage.get_pool_limits()}
    assert {k: limits[k] for k in POOL_LIMITS} == POOL_LIMITS == {GPU_POOL: 1, OPENAI_POOL: 4}


def test_two_training_steps_never_run_at_once(sqlite_instance, pool_log):
    # The repo's dagster.yaml alone (default_limit: 1) already limits the unset `gpu` pool to one.
    spans = run_two_steps(sqlite_instance, pool_steps.gpu_job, pool_log, patience_s=2.0)
    assert not overlap(spans), spans
    # Control: in a pool that allows four, the same two steps do run together.
    apply_pool_limits(sqlite_instance)
    pool_log.write_text("")
    spans = run_two_steps(sqlite_instance, pool_steps.openai_job, pool_log, patience_s=120.0)
    assert overlap(spans), spans


def test_two_training_steps_never_run_at_once_on_postgres(pg_instance, pool_log):
    apply_pool_limits(pg_instance)
    spans = run_two_steps(pg_instance, pool_steps.gpu_job, pool_log, patience_s=2.0)
    assert not overlap(spans), spans
