"""``reference-arch ask``: run a location's question job and print its answer."""

from __future__ import annotations

import json
import sys

from reference_arch.cli.runs import QUIET, CliError, execute_run, first_failure, instance, load_defs, note_input

ASK_TARGETS = {  # ask target -> (location, job, answer asset's location prefix)
    "prompt": ("prompt", "prompt_question_job", "prompt"),
    "rag": ("rag", "rag_question_job", "rag"),
    "finetuned": ("finetune", "finetuned_question_job", "finetune"),
}


def ask(target: str, question: str, inst=None, template: str | None = None, *, k: int | None = None,
        mode: str | None = None, model: str | None = None) -> dict:
    """Run a question job synchronously and return its answer record (with ``run_id``). ``k`` and ``mode``
    (rag) set ``RetrievalConfig``; ``model`` (prompt, rag) this run's chat model (``QuestionConfig.model``);
    unset, the job's defaults."""
    import dagster as dg

    from reference_arch.common.questions import question_run_config, validate_question

    location, job_name, prefix = ASK_TARGETS[target]
    refused(target, template=template, k=k, mode=mode, model=model)  # before any question or definitions
    try:
        validated = validate_question(question)
        run_config = {**question_run_config(prefix, validated), **QUIET}  # the question masked: no secret in runs.db
    except ValueError as err:  # QuestionError, or a REFERENCE_ARCH_REDACT that names no type
        raise CliError(str(err)) from None
    note_input("question", question, run_config["ops"][f"{prefix}__question"]["config"]["question"])
    question = validated
    defs = load_defs(location)
    try:
        job = defs.resolve_job_def(job_name)
    except Exception:  # noqa: BLE001 - a location not built yet
        raise CliError(f"the {location} location has no {job_name} yet") from None
    if location == "prompt":  # the template's variable rules refuse a bad question before any run
        from reference_arch.prompt.templates import DEFAULT_TEMPLATE, template_named, validate_values

        try:
            validate_values(template_named(template or DEFAULT_TEMPLATE), {"question": question})
        except ValueError as err:
            raise CliError(str(err)) from None
    if template is not None:
        run_config["ops"]["prompt__prompt"] = {"config": {"template": template}}
    if model is not None:
        run_config["ops"][f"{prefix}__question"]["config"]["model"] = model
    retrieval = {name: value for name, value in (("k", k), ("mode", mode)) if value is not None}
    if retrieval:
        run_config["ops"]["rag__retrieved_sources"] = {"config": retrieval}
    result = execute_run(job, inst or instance(), run_config=run_config)
    if not result.success:
        raise CliError(first_failure(result))
    record = dict(result.asset_value(dg.AssetKey([prefix, "answer"])))
    record["run_id"] = result.run_id
    return record


def refused(target: str, **options) -> None:
    """``CliError`` naming an option the target's job has no config for (``ask --help`` says which is whose)."""
    if options.get("template") is not None and target != "prompt":
        raise CliError(f"--template is for `ask prompt`; {target} has no prompt template")
    given = [f"--{name}" for name in ("k", "mode") if options.get(name) is not None]
    if given and target != "rag":
        raise CliError(f"{' and '.join(given)} {'configure' if len(given) > 1 else 'configures'} the retrieval of "
                       f"`ask rag`; `ask {target}` has no such setting")
    if options.get("model") is not None and target == "finetuned":
        raise CliError("--model is for `ask prompt` and `ask rag`; `ask finetuned` answers with the published "
                       "fine-tuned model (REFERENCE_ARCH_FINETUNED_LLM_MODEL names another)")


def print_answer(record: dict, as_json: bool) -> None:
    from reference_arch.common.llm.packaged import model_label

    if as_json:
        print(json.dumps(record, default=str))
        return
    print(record["answer"] or "(empty answer)")
    for line in source_lines(record.get("sources", [])):
        print(line)
    print(f"-- model {model_label(record['model'])}, run {record['run_id']}")


def source_lines(sources: list[dict]) -> list[str]:
    """A ``Sources:`` heading and a numbered line per source (none for no sources): the heading keeps a
    citation that wraps to the start of a line from reading as an entry of this list."""
    lines = [f"  [{i}] {s.get('title')} ({s.get('source')}) score={s.get('score', 0):.3f}" for i, s in enumerate(sources, 1)]
    return ["  Sources:", *lines] if lines else []

