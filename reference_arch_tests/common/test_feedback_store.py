"""The feedback store: records appended per day, read back in order, one verdict per run."""

from __future__ import annotations

import pytest

from reference_arch.common.feedback import FeedbackError, append_feedback, feedback_record, read_feedback


def test_records_land_in_their_day_and_read_back_in_order(tmp_home):
    first = feedback_record("run-1", "up", target="rag", question="q1", answer="a1",
                            recorded_at="2026-11-29T10:00:00+00:00")
    second = feedback_record("run-2", "down", target="prompt", question="q2", answer="a2", comment="wrong",
                             recorded_at="2026-11-30T09:00:00+00:00")
    append_feedback(first)
    append_feedback(second)
    assert [r["run_id"] for r in read_feedback()] == ["run-1", "run-2"]
    assert read_feedback(day="2026-11-30") == [second]


def test_a_second_verdict_on_a_run_is_refused_and_loses_nothing(tmp_home):
    append_feedback(feedback_record("run-1", "up", target="rag", question="q", answer="a"))
    with pytest.raises(FeedbackError, match="already has a verdict"):
        append_feedback(feedback_record("run-1", "down", target="rag", question="q", answer="a"))
    assert [r["verdict"] for r in read_feedback()] == ["up"]


def test_an_unknown_verdict_is_refused():
    with pytest.raises(FeedbackError, match="not one of up, down"):
        feedback_record("run-1", "meh", target="rag", question="q", answer="a")


def _append_many(home: str, start: int) -> None:
    import os

    os.environ["REFERENCE_ARCH_HOME"] = home
    for i in range(start, start + 20):
        append_feedback(feedback_record(f"run-{i}", "up", target="rag", question="q", answer="a"))


def test_appends_from_processes_at_once_lose_nothing(tmp_home):
    """Feedback runs launched from the UI each run in their own process: concurrent appends keep every verdict."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_append_many, args=(str(tmp_home), start)) for start in (0, 20, 40)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert sorted(r["run_id"] for r in read_feedback()) == sorted(f"run-{i}" for i in range(60))
