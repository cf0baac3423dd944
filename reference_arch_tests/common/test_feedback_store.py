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
