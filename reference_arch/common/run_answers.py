"""A question run's answer, read back from the Dagster instance's event log.

Every question job (``prompt_question_job``, ``rag_question_job``, ``finetuned_question_job``) ends with a
``<location>/answer`` asset whose materialization carries its answer record as metadata
(``questions.record_metadata``). The event log keeps that for every run; the IO manager keeps only the
newest run's value of the (unpartitioned) answer asset, so it is not where an older run's answer is read.

    target, record = answer_of_run(instance, run_id)   # RunAnswerError (one line) when it has none
"""

from __future__ import annotations

from typing import Any

# The answer asset's location prefix -> the `reference-arch ask` target that asks it.
ANSWER_TARGETS = {"prompt": "prompt", "rag": "rag", "finetune": "finetuned"}
QUESTION_JOBS = ("prompt_question_job", "rag_question_job", "finetuned_question_job")


class RunAnswerError(ValueError):
    """The run does not exist, is no question run, or kept no answer; the message says which, in one line."""


def answer_of_run(instance, run_id: str) -> tuple[str, dict[str, Any]]:
    """``(ask target, answer record)`` of question run ``run_id`` on ``instance``: the record as the answer
    asset stored it (``question``, ``answer``, ``sources``, ``model``, ``usage`` and the job's extras such as
    ``template``). A run is a question run when it materialized a ``<location>/answer`` (a question job's, or
    ``reference-arch materialize prompt``'s, which answers the default question). ``RunAnswerError`` for an
    unknown run id, a run that answered nothing (another job's, or a failed question run)."""
    import dagster as dg

    from reference_arch.common.questions import RECORD_METADATA_KEY

    run_id = (run_id or "").strip()
    run = instance.get_run_by_id(run_id) if run_id else None
    if run is None:
        raise RunAnswerError(f"no run {run_id!r} on this Dagster instance: give the run id that "
                             "`reference-arch ask` printed (or the UI's Runs page shows)")
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    for record in reversed(records):
        materialization = record.event_log_entry.asset_materialization
        path = materialization.asset_key.path if materialization is not None else []
        if len(path) == 2 and path[1] == "answer" and path[0] in ANSWER_TARGETS:
            kept = materialization.metadata.get(RECORD_METADATA_KEY)
            if kept is None:
                raise RunAnswerError(f"run {run_id} answered before answers kept their record in metadata: "
                                     "ask the question again and judge the new run")
            return ANSWER_TARGETS[path[0]], dict(kept.value)
    if run.job_name in QUESTION_JOBS:
        raise RunAnswerError(f"run {run_id} of {run.job_name} has no answer (its status is {run.status.value}): "
                             "only an answered question can be judged")
    raise RunAnswerError(f"run {run_id} is not a question run: it is a run of {run.job_name}, which answers no "
                         f"question (question runs: {', '.join(QUESTION_JOBS)})")
