"""Feedback as data: real question runs judged through the CLI (up) and through GraphQL (down), the
``prompt/feedback`` day partition and its approval-rate metadata, the sensor writing the evaluation cases,
the evaluations reading them, and each refusal as one line."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import dagster as dg
import pytest
import yaml

from reference_arch.cli import main
from reference_arch.common.feedback import FEEDBACK_KEYS, read_feedback
from reference_arch.common.feedback_cases import candidates_path, regression_path, write_eval_cases
from reference_arch.prompt.definitions import defs

FEEDBACK = dg.AssetKey(["prompt", "feedback"])

LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def ask_json(question: str, capsys) -> dict:
    assert main(["ask", "prompt", question, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def refused(argv: list[str], capsys) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def launch_through_graphql(instance, run_config: dict) -> str:
    """``feedback_job`` launched by GraphQL on a workspace of the prompt location (a code server process, the
    run in a process of its own, as the webserver launches it); returns the run id once it has finished."""
    from dagster._core.test_utils import poll_for_finished_run
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql, infer_job_selector

    import reference_arch.prompt.definitions as module

    with define_out_of_process_context(module.__file__, "defs", instance) as context:
        result = execute_dagster_graphql(context, LAUNCH, {"executionParams": {
            "selector": infer_job_selector(context, "feedback_job"), "runConfigData": run_config}})
        launched = result.data["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        poll_for_finished_run(instance, run_id, timeout=120)
    return run_id


def daemonless_instance() -> dg.DagsterInstance:
    """The project's instance (tmp DAGSTER_HOME) with runs launched at once, not queued for a daemon."""
    from reference_arch.common.settings import dagster_home

    config = dagster_home() / "dagster.yaml"
    config.write_text(config.read_text() + "\nrun_coordinator:\n  module: dagster._core.run_coordinator\n"
                                           "  class: DefaultRunCoordinator\n")
    return dg.DagsterInstance.get()


def test_feedback_from_the_cli_and_graphql_becomes_a_partition_and_eval_cases(registry_with_tiny_model, capsys):
    instance = daemonless_instance()
    good, bad = ask_json("What is a series?", capsys), ask_json("What is a DataFrame?", capsys)

    assert main(["feedback", good["run_id"], "up", "--comment", "short and right"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"recorded up on run {good['run_id']} (prompt): approval 100%"), line

    config = {"ops": {"record_feedback": {"config": {"run_id": bad["run_id"], "verdict": "down",
                                                     "comment": "mail me at someone@example.com"}}}}
    graphql_run = launch_through_graphql(instance, config)
    assert instance.get_run_by_id(graphql_run).status == dg.DagsterRunStatus.SUCCESS

    records = read_feedback()
    assert [r["verdict"] for r in records] == ["up", "down"]
    assert all(tuple(r) == FEEDBACK_KEYS for r in records)
    for record, asked in zip(records, (good, bad)):
        assert record["run_id"] == asked["run_id"] and record["target"] == "prompt"
        assert (record["question"], record["answer"], record["model"]) == (asked["question"], asked["answer"],
                                                                           asked["model"])
        assert record["template"] == asked["template"] == "pandas" and record["sources"] == []
    assert "someone@example.com" not in records[1]["comment"]  # masked like a question

    today = datetime.now(timezone.utc).date().isoformat()
    events = instance.fetch_materializations(FEEDBACK, limit=10, ascending=True).records
    assert [e.asset_materialization.partition for e in events] == [today, today]
    plotted = [{k: e.asset_materialization.metadata[k].value for k in ("approval_rate", "up", "down", "total")}
               for e in events]
    assert plotted == [{"approval_rate": 1.0, "up": 1, "down": 0, "total": 1},
                       {"approval_rate": 0.5, "up": 1, "down": 1, "total": 2}]

    # the sensor asks for the evaluation cases after verdicts (one request for all since its last tick: the
    # asset reads the whole store); its run writes both files
    sensor = defs.resolve_sensor_def("feedback_sensor")
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    assert [r.run_key for r in first.run_requests] == [f"feedback-{events[-1].run_id}"]
    again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=first.cursor))
    assert not again.run_requests
    job = defs.resolve_job_def("feedback_eval_cases_job")
    assert job.execute_in_process(instance=instance).success
    capsys.readouterr()
    candidates = yaml.safe_load(candidates_path().read_text())["questions"]
    regression = yaml.safe_load(regression_path().read_text())
    assert [c["run_id"] for c in candidates] == [bad["run_id"]]
    assert candidates[0]["rejected_answer"] == bad["answer"]
    assert regression["name"] == "feedback"
    assert [(c["question"], c["reference"]) for c in regression["questions"]] == [(good["question"], good["answer"])]

    # the refusals, each one line, nothing stored changed
    with pytest.raises(SystemExit) as exited:  # a verdict is one of argparse's choices: refused before any run
        main(["feedback", good["run_id"], "sideways"])
    assert exited.value.code == 2 and capsys.readouterr().err.strip().splitlines()[-1] == (
        "reference-arch feedback: error: argument verdict: invalid choice: 'sideways' (choose from 'up', 'down')")
    assert refused(["feedback", "no-such-run", "up"], capsys).startswith(
        "error: feedback refused: no run 'no-such-run' on this Dagster instance")
    assert refused(["feedback", good["run_id"], "down"], capsys).startswith(
        f"error: feedback refused: run {good['run_id']} already has a verdict ('up', recorded ")
    assert refused(["feedback", graphql_run, "up"], capsys) == (
        f"error: feedback refused: run {graphql_run} is not a question run: it is a run of feedback_job, which "
        "answers no question (question runs: prompt_question_job, rag_question_job, finetuned_question_job)")
    assert len(read_feedback()) == 2


def test_the_evaluations_read_the_approved_answers(tmp_home):
    """The regression file feeds prompt's evaluation set (question + approved answer) and, for RAG answers
    with cited documents, a ``feedback`` retrieval question set."""
    from reference_arch.common.feedback import feedback_record
    from reference_arch.prompt.evaluation_set import feedback_questions, split_of
    from reference_arch.rag.feedback_set import with_feedback_set

    assert feedback_questions("dev") == [] and with_feedback_set({}) == {}  # before any feedback
    rag = feedback_record("r1", "up", target="rag", question="How do I rename the index?", answer="Use rename [1].",
                          sources=[{"id": "docs:pandas.Series.rename", "document_id": "docs:pandas.Series.rename"}],
                          model="extractive")
    prompt = feedback_record("p1", "up", target="prompt", question="What is a Series?", answer="A 1-d array.",
                             model="tiny", template="pandas")
    rejected = feedback_record("p2", "down", target="prompt", question="What is NaN?", answer="def f(", model="tiny")
    assert write_eval_cases([rag, prompt, rejected]) == {
        "candidates": 1, "regression": 2, "candidates_path": str(candidates_path()),
        "regression_path": str(regression_path())}
    both = feedback_questions("dev") + feedback_questions("test")
    assert {(q.id, q.reference) for q in both} == {("feedback/p1", "A 1-d array.")}  # prompt answers only
    assert all(q.split == split_of(q.id) for q in both)
    sets = with_feedback_set({"samples": []})
    assert [(q.id, q.relevant) for q in sets["feedback"]] == [("feedback/r1", ("docs:pandas.Series.rename",))]


def test_template_evaluation_scores_the_approved_answers_too(instance):
    """An approved answer in the evaluation's split is scored as a regression case, its reference the answer,
    reported apart from the gated score (which stays on the evaluation set)."""
    from reference_arch.common.feedback import feedback_record
    from reference_arch.prompt.evaluation_set import feedback_questions, load_evaluation_set, split_of
    from reference_arch_tests.prompt.test_template_evaluation import GOOD, evaluate

    approved = feedback_record("p2", "up", target="prompt", question="What is a DataFrame?", answer=GOOD,
                               model="tiny", template="pandas")
    write_eval_cases([approved])
    assert split_of("feedback/p2") == "dev"  # the evaluation's default split (sha256 of the id)
    assert [q.id for q in feedback_questions("dev")] == ["feedback/p2"]
    result, server = evaluate(instance, GOOD, limit=1)
    assert result.success
    meta = result.asset_materializations_for_node("prompt__template_evaluation")[0].metadata
    assert meta["questions"].value == 1 and len(server.requests) == 2
    assert meta["feedback_cases"].value == 1 and meta["feedback_mean_similarity"].value > 0.99  # GOOD vs GOOD
    assert [row["id"] for row in meta["answers"].value] == [load_evaluation_set("dev")[0].id, "feedback/p2"]


def test_the_demo_feedback_round_returns_the_approval_rate(registry_with_tiny_model, capsys):
    from reference_arch.cli.demo import feedback_round

    first, second = ask_json("What is a series?", capsys), ask_json("What is a DataFrame?", capsys)
    lines: list[str] = []
    rate = feedback_round(dg.DagsterInstance.get(), first["run_id"], second["run_id"], echo=lines.append)
    assert rate == 0.5 and len(lines) == 2
    assert lines[0].startswith(f"  recorded up on run {first['run_id']} (prompt): approval 100%")
    assert lines[1].endswith("50% of 2 overall")


def test_a_question_run_without_an_answer_is_refused_with_one_line(tmp_home, capsys, monkeypatch):
    """A question run that failed (its model's package is not installed) answered nothing: there is nothing to
    judge."""
    from reference_arch.common.llm import packaged
    from reference_arch.common.llm.errors import LLMError

    def missing(model):
        raise LLMError(f"the packaged model {model.spec} is not installed")

    monkeypatch.setattr(packaged, "gguf_path", missing)
    assert main(["ask", "prompt", "What is a series?"]) == 1
    capsys.readouterr()
    (run,) = dg.DagsterInstance.get().get_runs()
    assert run.job_name == "prompt_question_job" and run.status == dg.DagsterRunStatus.FAILURE
    assert refused(["feedback", run.run_id, "down"], capsys) == (
        f"error: feedback refused: run {run.run_id} of prompt_question_job has no answer (its status is FAILURE): "
        "only an answered question can be judged")
    assert read_feedback() == []
