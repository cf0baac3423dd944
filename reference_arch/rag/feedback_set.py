"""Approved RAG answers as a retrieval question set: each approved answer's question, judged against the
documents that answer cited (``common.feedback_cases``). ``rag/retrieval_evaluation`` adds it to its sets."""

from __future__ import annotations

from reference_arch.common.feedback_cases import REGRESSION_SET_NAME, regression_cases
from reference_arch.rag.question_sets import Question, QuestionSetError


def with_feedback_set(sets: dict[str, list[Question]]) -> dict[str, list[Question]]:
    """``sets`` plus ``{"feedback": questions}`` when approved RAG answers with cited documents exist
    (``sets`` unchanged otherwise, or when a set of that name is already there); ``QuestionSetError`` for a
    damaged regression file."""
    try:
        cases = [c for c in regression_cases("rag") if c.get("relevant")]
    except ValueError as err:
        raise QuestionSetError(str(err)) from None
    if not cases or REGRESSION_SET_NAME in sets:
        return sets
    return {**sets, REGRESSION_SET_NAME: [Question(REGRESSION_SET_NAME, str(c["id"]), str(c["question"]),
                                                   tuple(str(r) for r in c["relevant"])) for c in cases]}
