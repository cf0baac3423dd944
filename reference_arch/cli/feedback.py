"""``reference-arch feedback RUN_ID up|down [--comment TEXT]``: a verdict on a question run's answer,
recorded by the prompt location's ``feedback_job`` on the project's instance (so it shows in the UI)."""

from __future__ import annotations

from reference_arch.cli.runs import QUIET, CliError, execute_run, first_failure, instance, load_defs, note_input


def give_feedback(run_id: str, verdict: str, comment: str = "", inst=None) -> dict:
    """Run ``feedback_job`` in process; returns the ``prompt/feedback`` materialization's metadata as plain
    values (``approval_rate``, ``up``, ``down``, ``total`` of the day, ``all_time_*``, ...) plus the
    feedback ``run_id``. ``CliError`` (one line) for a refused verdict: bad verdict, unknown run, not a
    question run, or a second verdict on the same run."""
    import dagster as dg

    from reference_arch.common.feedback import check_verdict, feedback_run_config

    try:
        check_verdict(verdict)  # before any run: a typo or an over-long comment makes no failed run
        # the comment repaired and masked: runs.db holds neither a secret nor undecodable bytes
        config = {**feedback_run_config(run_id, verdict, comment), **QUIET}
    except ValueError as err:  # FeedbackError; a REFERENCE_ARCH_REDACT that names no type
        raise CliError(str(err)) from None
    note_input("comment", comment, config["ops"]["record_feedback"]["config"]["comment"])
    job = load_defs("prompt").resolve_job_def("feedback_job")
    result = execute_run(job, inst or instance(), run_config=config)
    if not result.success:
        raise CliError(first_failure(result).removeprefix("record_feedback: "))
    materialization = next(m for m in result.asset_materializations_for_node("record_feedback")
                           if m.asset_key == dg.AssetKey(["prompt", "feedback"]))
    return {**{k: v.value for k, v in materialization.metadata.items()}, "day": materialization.partition,
            "feedback_run_id": result.run_id}


def feedback_line(recorded: dict) -> str:
    return (f"recorded {recorded['verdict']} on run {recorded['run_id']} ({recorded['target']}): approval "
            f"{recorded['approval_rate']:.0%} on {recorded['day']} ({recorded['up']} up, {recorded['down']} down), "
            f"{recorded['all_time_approval_rate']:.0%} of {recorded['all_time_total']} overall")

