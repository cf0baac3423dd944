"""Months loaded at once into the one DuckDB warehouse (the multiprocess executor, several runs):
nothing fails and nothing is lost."""

from __future__ import annotations

import dagster as dg

from reference_arch.common.warehouse_lock import lock_path
from reference_arch.finetune.defs import ingestion
from reference_arch.finetune.config import finetune_dir
from reference_arch_tests.workers import materialize_at_once, watch_lock

JANUARY, MARCH = "2026-01-01", "2026-03-01"


def _issues_in(month: str) -> int:
    window = ingestion.MONTHLY.time_window_for_partition_key(month)
    return len(ingestion.read_window(window.start, window.end)[0])


def test_months_loaded_at_once_lose_nothing(github_export, tmp_home, tmp_path):
    """Two months in two processes on a fresh home: without the lock one of them failed every time
    (DuckDB's "Could not set lock on file", or the dlt working folder wiped under the other load)."""
    materialize_at_once("reference_arch.finetune.defs.ingestion", ["github_issues", "qa_pairs"], [JANUARY, MARCH],
                        tmp_path)
    assert (_issues_in(JANUARY), _issues_in(MARCH)) == (14, 12)
    assert [len(ingestion.pairs_path(m).read_text().splitlines()) for m in (JANUARY, MARCH)] == [10, 12]


def test_pipeline_built_and_warehouse_opened_under_the_lock(github_export, instance, monkeypatch):
    seen = watch_lock(monkeypatch, lock_path(finetune_dir()))
    assert dg.materialize([ingestion.github_issues, ingestion.qa_pairs], instance=instance,
                          partition_key=JANUARY).success
    assert {what for what, _ in seen} == {"pipeline", "connect"}
    assert [(what, held) for what, held in seen if not held] == []
