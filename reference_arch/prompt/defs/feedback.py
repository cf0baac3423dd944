"""Feedback as data: a verdict (``up``/``down``) on a question run's answer, kept as a daily-partitioned
asset, and the evaluation cases made from it.

- ``feedback_job`` (run config ``ops.record_feedback.config``: ``run_id``, ``verdict``, ``comment``) reads the
  judged run's answer from the instance's event log (``common.run_answers``), appends the verdict to the
  feedback store (``common.feedback``: one JSON-lines file per day) and records a materialization of
  ``prompt/feedback``'s day partition with the approval rate as numeric metadata, so the UI plots it.
  ``reference-arch feedback RUN_ID up|down`` runs this job; the UI's launchpad and GraphQL launch it too.
- ``prompt/feedback`` is the store as an asset: materialized by ``feedback_job`` only (the files are the
  source of truth; nothing recomputes them), so it is declared, not computed here.
- ``prompt/feedback_eval_cases`` rewrites the candidate questions (rejected answers) and the regression cases
  (approved answers) that ``prompt/template_evaluation`` and ``rag/retrieval_evaluation`` read
  (``common.feedback_cases``); ``feedback_sensor`` requests it after each ``prompt/feedback`` materialization.

The prompt location owns all of it (an asset key lives in one location); the job judges answers of every
question job, since it only reads the shared instance.
"""

import dagster as dg

from reference_arch.common import settings
from reference_arch.common.locations import asset_defaults

FEEDBACK = dg.AssetKey(["prompt", "feedback"])
DAYS = dg.DailyPartitionsDefinition(start_date=settings.value("feedback_start").isoformat(), end_offset=1)

class FeedbackConfig(dg.Config):
    run_id: str  # the question run judged (prompt_question_job, rag_question_job, finetuned_question_job)
    verdict: str  # up | down
    comment: str = ""  # why, in the user's words (masked like a question)


def feedback_metadata(record: dict, day_records: list[dict], all_records: list[dict]) -> dict:
    """The ``prompt/feedback`` materialization's metadata: the day's counts and approval rate (numbers: the
    UI plots them), all-time ones, and the verdict just recorded."""
    from reference_arch.common.feedback import approval

    overall = approval(all_records)
    return {**approval(day_records), "all_time_approval_rate": overall["approval_rate"],
            "all_time_total": overall["total"], "verdict": record["verdict"], "run_id": record["run_id"],
            "target": record["target"], "model": record["model"], "template": record["template"] or "",
            "question": dg.MetadataValue.text(record["question"]), "comment": dg.MetadataValue.text(record["comment"])}


@dg.op(description="Record a verdict on a question run's answer in prompt/feedback; refused in one line for an "
                   "unknown run, a run that is no question run, a verdict other than up/down, or a second verdict.")
def record_feedback(context: dg.OpExecutionContext, config: FeedbackConfig) -> None:
    from collections import Counter

    from reference_arch.common.feedback import (FeedbackError, append_feedback, check_verdict, day_of,
                                                feedback_record, read_feedback)
    from reference_arch.common.redaction import redactor
    from reference_arch.common.run_answers import RunAnswerError, answer_of_run

    try:
        check_verdict(config.verdict)
        target, answer = answer_of_run(context.instance, config.run_id)
        record = feedback_record(
            config.run_id.strip(), config.verdict, target=target, question=answer["question"],
            answer=answer["answer"], sources=answer.get("sources"), model=answer.get("model", ""),
            template=answer.get("template"), comment=redactor().redact(config.comment, Counter()))
        append_feedback(record)
    except (FeedbackError, RunAnswerError) as err:
        raise dg.Failure(description=f"feedback refused: {err}") from None
    day = day_of(record["recorded_at"])
    context.log_event(dg.AssetMaterialization(
        FEEDBACK, partition=day, metadata=feedback_metadata(record, read_feedback(day), read_feedback())))


def code_reference(op: dg.OpDefinition) -> dict:
    """The UI's link to the source for an asset declared with ``dg.AssetSpec``, which Dagster cannot find
    itself: the op that records its materializations."""
    import inspect
    import warnings

    fn = op.compute_fn.decorated_fn
    with warnings.catch_warnings():  # code references are beta in Dagster 1.13 (as in common/locations)
        warnings.simplefilter("ignore", dg.BetaWarning)
        return {"dagster/code_references": dg.CodeReferencesMetadataValue(code_references=[
            dg.LocalFileCodeReference(file_path=inspect.getsourcefile(fn),
                                      line_number=inspect.getsourcelines(fn)[1])])}


feedback = dg.AssetSpec(
    FEEDBACK, partitions_def=DAYS, kinds={"python", "json"}, **asset_defaults("prompt", prefix=False),
    metadata=code_reference(record_feedback),
    description="Verdicts (up/down) on question runs' answers, one partition per UTC day, with the question, "
                "answer, sources, model and template judged (<home>/feedback/<day>.jsonl). Recorded by "
                "feedback_job; metadata: approval_rate, up, down, total of the day, and all_time_*.",
)


@dg.job(executor_def=dg.in_process_executor,
        description="Record a verdict on a question run's answer: config ops.record_feedback.config.run_id, "
                    "verdict (up | down), comment.")
def feedback_job():
    record_feedback()


@dg.asset(
    **asset_defaults("prompt"), deps=[FEEDBACK], kinds={"python", "yaml"},
    description="Evaluation cases from feedback: rejected answers as candidate questions for review "
                "(<home>/feedback/eval/candidates.yaml), approved ones as regression cases "
                "(regression.yaml) that prompt/template_evaluation and rag/retrieval_evaluation score.",
)
def feedback_eval_cases() -> dg.MaterializeResult:
    from reference_arch.common.feedback import read_feedback
    from reference_arch.common.feedback_cases import write_eval_cases

    written = write_eval_cases(read_feedback())
    return dg.MaterializeResult(metadata={
        "candidates": written["candidates"], "regression_cases": written["regression"],
        "candidates_path": dg.MetadataValue.path(written["candidates_path"]),
        "regression_path": dg.MetadataValue.path(written["regression_path"])})


feedback_eval_cases_job = dg.define_asset_job(
    "feedback_eval_cases_job", selection=dg.AssetSelection.assets(feedback_eval_cases),
    executor_def=dg.in_process_executor, description="Rewrite the evaluation cases made from feedback.")


@dg.asset_sensor(asset_key=FEEDBACK, job=feedback_eval_cases_job, minimum_interval_seconds=30,
                 default_status=dg.DefaultSensorStatus.RUNNING,
                 description="After each verdict (a prompt/feedback materialization), rewrites the evaluation cases.")
def feedback_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    return dg.RunRequest(run_key=f"feedback-{asset_event.run_id}")
