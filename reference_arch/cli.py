"""``reference-arch``: materialize the locations, ask questions, run the demo.

Everything runs in this process on the project's Dagster instance (``DAGSTER_HOME``, default
``.dagster_home/``), so the runs it makes show up in ``make dev`` afterwards.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

LOCATIONS = ("pretrain", "finetune", "rag", "prompt")  # dependency order
ASK_TARGETS = {  # ask target -> (location, job, answer asset's location prefix)
    "prompt": ("prompt", "prompt_question_job", "prompt"),
    "rag": ("rag", "rag_question_job", "rag"),
    "finetuned": ("finetune", "finetuned_question_job", "finetune"),
}
DEMO_QUESTIONS = {
    "prompt": "What is a series?",
    "rag": "How do I rename the index of a Series?",
    "finetuned": "Reading a CSV file with a semicolon separator fails with a parse error. What should I do?",
}
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # the CLI reports failures itself


class CliError(Exception):
    """A failure reported as one line."""


def load_defs(location: str):
    import reference_arch  # noqa: F401  (offline switches)

    return importlib.import_module(f"reference_arch.{location}.definitions").defs


def instance():
    import dagster as dg

    from reference_arch.common.pools import apply_pool_limits, free_dead_runs
    from reference_arch.common.settings import dagster_home

    dagster_home()
    inst = dg.DagsterInstance.get()
    apply_pool_limits(inst)  # gpu: 1, openai: 4 (dagster.yaml holds only the default limit)
    free_dead_runs(inst, log=lambda line: print(line, file=sys.stderr))  # a killed run's slot, not a 10-minute wait
    return inst


def _first_line(error) -> str:
    lines = [line.strip() for line in (error.message or "").strip().splitlines() if line.strip()]
    return lines[0] if lines else error.cls_name


def _innermost(error):
    """The exception at the bottom of an error's ``raise ... from`` (or implicit context) chain."""
    seen = 0
    while (error.cause or error.context) is not None and seen < 20:
        error, seen = error.cause or error.context, seen + 1
    return error


def first_failure(result) -> str:
    """The first failed blocking check or step failure, as one line without the traceback wall."""
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed and data.severity.value == "ERROR":
                why = data.description or ", ".join(
                    f"{k}={v.value}" for k, v in data.metadata.items() if isinstance(v.value, (int, float, str)))
                return f"check {data.asset_key.to_user_string()}:{data.check_name} failed: {why}"
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None and error.cls_name in ("DagsterExecutionStepExecutionError",) and error.cause:
                error = error.cause
            if error is None:
                return f"step {event.step_key} failed"
            message = _first_line(error)
            if error.cls_name == "Failure":
                message = message.split(": ", 1)[-1] if message.startswith("dagster._core") else message
            cause = _innermost(error)
            if cause is not error and _first_line(cause) not in message:
                # Wrappers (dlt's PipelineStepFailed: "... with exception:") put the cause on later lines.
                message = f"{message.rstrip(':').rstrip()}: {_first_line(cause)}"  # that line names its class
            return f"{event.step_key}: {message}"
    return "the run failed"


# -- materialize ------------------------------------------------------------------------------
@dataclass
class Step:
    keys: list = field(default_factory=list)
    partitions_def: Any = None
    single_run: bool = True


def plan(defs) -> list[Step]:
    """Ordered steps, each one run (or one run per partition) of assets sharing a partitions
    definition: an asset joins the earliest step of its kind that comes after all its parents, then
    a step merges into a later one of its kind when no step between depends on it."""
    graph = defs.resolve_asset_graph()
    steps: list[Step] = []
    step_of: dict = {}
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        if not node.is_materializable:
            continue
        earliest = max(
            (step_of[p] + (steps[step_of[p]].partitions_def != node.partitions_def)
             for p in node.parent_keys if p in step_of),
            default=0,
        )
        index = next((i for i in range(earliest, len(steps)) if steps[i].partitions_def == node.partitions_def), None)
        if index is None:
            steps.append(Step([], node.partitions_def))
            index = len(steps) - 1
        # BackfillPolicy.single_run() is the policy with no per-run partition limit.
        single = node.backfill_policy is not None and node.backfill_policy.max_partitions_per_run is None
        steps[index].keys.append(key)
        steps[index].single_run &= single
        step_of[key] = index
    # A step joins a later one of its kind when no step between reads it (``prompt/question`` joins
    # its prompt and answer after the template partitions): fewer runs, and a question answered in one.
    for i in reversed(range(len(steps) - 1)):
        mine = set(steps[i].keys)
        for j in range(i + 1, len(steps)):
            if steps[j].partitions_def == steps[i].partitions_def:
                steps[j].keys[:0] = steps[i].keys
                steps[j].single_run &= steps[i].single_run
                del steps[i]
                break
            if any(mine & graph.get(k).parent_keys for k in steps[j].keys):
                break
    return steps


def step_job(location: str, step: Step, defs):
    """The step as a job named for what it materializes (``materialize_pretrain_raw_corpus_to_tokenizer``),
    so its runs read as that in the UI rather than as ``__ephemeral_asset_job__``."""
    import dagster as dg

    first, last = step.keys[0].path[-1], step.keys[-1].path[-1]
    name = f"materialize_{location}_{first}" + (f"_to_{last}" if len(step.keys) > 1 else "")
    job = dg.define_asset_job(name, selection=dg.AssetSelection.assets(*step.keys),
                              description=f"reference-arch materialize {location}: "
                                          + ", ".join(k.to_user_string() for k in step.keys))
    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, resources=defs.resources,
                          jobs=[job]).resolve_job_def(name)


def materialize_location(location: str, inst, echo=print) -> list:
    """Materialize every asset and partition of a location; returns the run results."""
    defs = load_defs(location)
    results = []
    for step in plan(defs):
        names = ", ".join(k.to_user_string() for k in step.keys)
        runs: list[dict] = [{}]
        if step.partitions_def is not None:
            keys = step.partitions_def.get_partition_keys(dynamic_partitions_store=inst)
            if not keys:
                echo(f"  [{location}] {names}: no partitions yet, skipped")
                continue
            if step.single_run and len(keys) > 1:
                runs = [{"tags": {"dagster/asset_partition_range_start": keys[0],
                                  "dagster/asset_partition_range_end": keys[-1]}}]
            else:
                runs = [{"partition_key": k} for k in keys]
        label = f"{len(runs)} run(s)" if len(runs) > 1 else (
            f"{len(keys)} partitions in one run" if step.partitions_def is not None else "1 run")
        echo(f"  [{location}] {names} ({label})", end="", flush=True)
        started = time.perf_counter()
        job = step_job(location, step, defs)
        for run in runs:
            result = job.execute_in_process(run_config=QUIET, instance=inst, raise_on_error=False, **run)
            results.append(result)
            if not result.success:
                echo(" FAILED")
                raise CliError(f"{location}: {first_failure(result)} (run {result.run_id})")
            echo(".", end="", flush=True)
        echo(f" ok ({time.perf_counter() - started:.1f}s)")
    return results


def check_summary(results, expected: dict[str, str] | None = None) -> list[str]:
    """One line per asset check evaluated in these runs; a failure listed in ``expected``
    (``"asset:check" -> why``) is labelled as expected, with its reason."""
    expected = expected or {}
    lines = []
    for result in results:
        for event in result.all_events:
            if event.event_type_value != "ASSET_CHECK_EVALUATION":
                continue
            data = event.event_specific_data
            numbers = {k: v.value for k, v in data.metadata.items() if isinstance(v.value, (int, float))
                       and not isinstance(v.value, bool)}
            shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(numbers.items())[:4])
            name = f"{data.asset_key.to_user_string()}:{data.check_name}"
            status = "passed" if data.passed else f"FAILED ({data.severity.value})"
            if not data.passed and name in expected:
                status += f", expected offline: {expected[name]}"
            lines.append(f"{name} {status}" + (f"  {shown}" if shown else ""))
    return lines


def questions_answered(results) -> dict[str, set[str]]:
    """Location prefix -> the questions its ``question`` asset took in these runs."""
    found: dict[str, set[str]] = {}
    for result in results:
        for event in result.all_events:
            if event.event_type_value != "ASSET_MATERIALIZATION":
                continue
            materialization = event.event_specific_data.materialization
            key = materialization.asset_key.path
            if key[-1] == "question" and "question" in materialization.metadata:
                found.setdefault(key[0], set()).add(materialization.metadata["question"].value)
    return found


# -- ask ----------------------------------------------------------------------------------------
def ask(target: str, question: str, inst=None, template: str | None = None) -> dict:
    """Run a question job synchronously and return its answer record (with ``run_id``)."""
    import dagster as dg

    from reference_arch.common.questions import QuestionError, question_run_config, validate_question
    from reference_arch.common.unicode_text import repair_text

    location, job_name, prefix = ASK_TARGETS[target]
    repaired = repair_text(question)[1]
    if repaired:  # bytes that are not UTF-8 (the shell passes them through as they are)
        print(f"note: the question held {repaired} bytes that are not valid UTF-8; they were replaced with U+FFFD",
              file=sys.stderr)
    try:
        question = validate_question(question)
    except QuestionError as err:
        raise CliError(str(err)) from None
    defs = load_defs(location)
    try:
        job = defs.resolve_job_def(job_name)
    except Exception:  # noqa: BLE001 - a location not built yet
        raise CliError(f"the {location} location has no {job_name} yet") from None
    run_config = {**question_run_config(prefix, question), **QUIET}
    if template is not None and location != "prompt":
        raise CliError(f"--template is for `ask prompt`; {target} has no prompt template")
    if location == "prompt":  # the template's variable rules refuse a bad question before any run
        from reference_arch.prompt.templates import DEFAULT_TEMPLATE, template_named, validate_values

        try:
            validate_values(template_named(template or DEFAULT_TEMPLATE), {"question": question})
        except ValueError as err:
            raise CliError(str(err)) from None
    if template is not None:
        run_config["ops"]["prompt__prompt"] = {"config": {"template": template}}
    result = job.execute_in_process(run_config=run_config, instance=inst or instance(), raise_on_error=False)
    if not result.success:
        raise CliError(first_failure(result))
    record = dict(result.asset_value(dg.AssetKey([prefix, "answer"])))
    record["run_id"] = result.run_id
    return record


def print_answer(record: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(record, default=str))
        return
    print(record["answer"] or "(empty answer)")
    for i, source in enumerate(record.get("sources", []), 1):
        print(f"  [{i}] {source.get('title')} ({source.get('source')}) score={source.get('score', 0):.3f}")
    print(f"-- model {record['model']}, run {record['run_id']}")


# -- demo ---------------------------------------------------------------------------------------
def print_rag_answer(record: dict, spent: str) -> None:
    """The RAG answer wrapped for a terminal, its numbered sources, and how it was made (``spent``:
    the usage line of a generated answer)."""
    import textwrap

    for paragraph in (record["answer"] or "(empty answer)").split("\n"):
        print(textwrap.fill(paragraph, width=100, initial_indent="  ", subsequent_indent="  ") or "")
    for i, source in enumerate(record.get("sources", [])[:5], 1):
        print(f"  [{i}] {source.get('title')} ({source.get('source')}) score={source.get('score', 0):.3f}")
    if record.get("answerer") == "extractive":
        spent = "extractive: the sources' own sentences, ranked by similarity to the question (no LLM)"
    print(f"  -- model {record['model']}, {spent}")


# Checks the tiny local model cannot pass: it was trained to continue Python, not to follow instructions.
OFFLINE_EXPECTED_FAILURES = {
    "prompt/answer:answer_format": "the local code model does not follow the template's format",
}


def local_model_line(stage_seconds: float | None) -> str:
    """What answers the questions offline, what it can and cannot do, and how to get real answers."""
    from reference_arch.common.registry import ModelNotFoundError, ModelRegistry
    from reference_arch.pretrain.defs.evaluation import MODEL_NAME

    try:
        model = ModelRegistry().latest()
    except ModelNotFoundError:
        return "No local model: set OPENAI_API_KEY (and OPENAI_BASE_URL for another OpenAI-compatible server)."
    params = model.card.get("parameters")
    if params is None:  # a fine-tuned card: its base model's size
        try:
            params = ModelRegistry().get(MODEL_NAME).card.get("parameters")
        except ModelNotFoundError:
            params = None
    size = f"a {params / 1e6:.1f}M-parameter" if params else "a tiny"
    took = f" in {stage_seconds:.0f}s" if stage_seconds else ""
    tuned = "" if model.name == MODEL_NAME else ", then fine-tuned"
    return (f"Local model {model.spec}: {size} code model pretrained from scratch here{took}{tuned}. It writes "
            "Python-looking text, not answers; for real answers set OPENAI_API_KEY (and OPENAI_BASE_URL for "
            "any OpenAI-compatible server).")


def usage_line(record: dict, asked_above: bool, location: str) -> str:
    usage = record["usage"]
    if not usage.get("cache_hits"):
        return f"tokens {usage.get('prompt_tokens')}+{usage.get('completion_tokens')}"
    if asked_above:  # the materialize step ran the question asset with this same (default) question
        return (f"from the response cache: `materialize {location}` above sent this same prompt "
                "(temperature 0, so the stored answer is reused)")
    return "from the response cache: an earlier run sent this same prompt (temperature 0, so the stored answer is reused)"


def demo(inst) -> None:
    import os

    from reference_arch.common.registry import ModelRegistry
    from reference_arch.common.resources import llm_resource

    timings: dict[str, float] = {}
    checks: list[str] = []
    answered: dict[str, set[str]] = {}
    llm = llm_resource()
    local = llm.resolved_provider() == "local"
    expected = OFFLINE_EXPECTED_FAILURES if local else {}
    for location in LOCATIONS:
        print(f"== materialize {location}")
        started = time.perf_counter()
        results = materialize_location(location, inst)
        checks += check_summary(results, expected)
        for prefix, questions in questions_answered(results).items():
            answered.setdefault(prefix, set()).update(questions)
        timings[location] = time.perf_counter() - started
    print("\n== answers")
    print(local_model_line(timings.get("pretrain")) if local else
          f"The answers below come from {llm.resolved_model()} (OpenAI-compatible API).")
    for target, question in DEMO_QUESTIONS.items():
        started = time.perf_counter()
        try:
            record = ask(target, question, inst)
        except CliError as err:
            print(f"[{target}] {question}\n  error: {err}")
            continue
        timings[f"ask {target}"] = time.perf_counter() - started
        location, _, prefix = ASK_TARGETS[target]
        print(f"[{target}] {question}")
        if target == "rag":
            print_rag_answer(record, usage_line(record, question in answered.get(prefix, set()), location))
            continue
        print("  " + (record["answer"] or "(empty answer)").replace("\n", "\n  "))
        for i, source in enumerate(record.get("sources", [])[:5], 1):
            print(f"  [{i}] {source.get('title')} ({source.get('source')}) score={source.get('score', 0):.3f}")
        print(f"  -- model {record['model']}, {usage_line(record, question in answered.get(prefix, set()), location)}")
    print("\n== checks")
    print("\n".join(f"  {line}" for line in checks) or "  (none)")
    print("\n== models in the registry")
    for model in ModelRegistry().list():
        metrics = model.card.get("metrics", {})
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(metrics.items())[:5])
        print(f"  {model.spec}  {shown}")
    print("\n== time per stage")
    for stage, seconds in timings.items():
        print(f"  {stage:<14} {seconds:7.1f}s")
    print(f"  {'total':<14} {sum(timings.values()):7.1f}s")
    print(f"\nSee these runs in the UI: `make dev`, or `dagster dev` in the repo root ({os.environ['DAGSTER_HOME']}).")


# -- entry point ----------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reference-arch", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("materialize", help="materialize every asset and partition of a location")
    m.add_argument("location", choices=[*LOCATIONS, "all"])
    a = sub.add_parser("ask", help="run a question job and print the answer")
    a.add_argument("target", choices=list(ASK_TARGETS))
    a.add_argument("question")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.add_argument("--template", help="prompt template (a partition of prompt/template; default pandas)")
    sub.add_parser("demo", help="pretrain -> finetune -> rag -> prompt, then ask the seed questions")
    return p


def quiet_warnings() -> None:
    """Dagster's beta/preview notices are for library authors, not for the CLI's reader."""
    import warnings

    import dagster as dg

    for category in (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning, DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    quiet_warnings()
    try:
        inst = instance()
        if args.command == "materialize":
            for location in LOCATIONS if args.location == "all" else [args.location]:
                print(f"== materialize {location}")
                for line in check_summary(materialize_location(location, inst)):
                    print(f"  {line}")
        elif args.command == "ask":
            print_answer(ask(args.target, args.question, inst, args.template), args.json)
        else:
            demo(inst)
    except CliError as err:
        from reference_arch.common.secrets import scrub

        print(f"error: {scrub(err)}", file=sys.stderr)  # the last line of defence: clients scrub their own
        return 1
    return 0


def run() -> None:
    """The console script. Skips interpreter teardown, where duckdb 2's bindings print pages of
    harmless "leaked function" notices after the output the user came for."""
    import os

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
