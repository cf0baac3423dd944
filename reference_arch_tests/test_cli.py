"""The CLI end to end on a temporary home and instance."""

import json
import time
import uuid

import dagster as dg

from reference_arch.cli import main
from reference_arch.prompt.templates import TEMPLATES


def test_ask_prompt_json(registry_with_tiny_model, capsys):
    assert main(["ask", "prompt", "What is a series?", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(record) >= {"answer", "sources", "model", "usage", "run_id"}
    assert record["model"] == "registry:tiny-lm@1" and record["sources"] == []
    assert record["usage"]["calls"] == 1
    run = dg.DagsterInstance.get().get_run_by_id(record["run_id"])
    assert run is not None and run.is_success  # the run is on the project's instance, for the UI


def test_ask_refuses_bad_input_with_one_line(tmp_home, capsys):
    assert main(["ask", "prompt", "   "]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: the question is empty: ask something"


def test_ask_without_a_model_says_what_to_do(tmp_home, capsys, monkeypatch):
    """The packaged model's package is not installed: one line saying how to install it."""
    import dataclasses

    from reference_arch.common.llm import packaged

    missing = dataclasses.replace(packaged.SMOLLM2, module="reference_arch_no_such_model_package")
    monkeypatch.setitem(packaged.PACKAGED, missing.name, missing)
    assert main(["ask", "prompt", "What is a series?"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "packaged model packaged:smollm2-135m-instruct is not installed" in err[0]
    assert "make install" in err[0]


def test_materialize_prompt_every_partition(registry_with_tiny_model, capsys):
    assert main(["materialize", "prompt"]) == 0
    out = capsys.readouterr().out
    assert "prompt/answer" in out and "answer_format" in out
    instance = dg.DagsterInstance.get()
    materialized = instance.get_materialized_partitions(dg.AssetKey(["prompt", "template"]))
    assert materialized == set(TEMPLATES) >= {"pandas", "pandas_example", "pandas_one_shot", "pandas_few_shot"}
    for name in ("question", "prompt", "answer"):  # unpartitioned, after the templates
        assert instance.get_latest_materialization_event(dg.AssetKey(["prompt", name])) is not None, name
    # The runs are named for what they do, not __ephemeral_asset_job__; the question is answered in one run.
    names = [run.job_name for run in reversed(instance.get_runs())]
    # each template partition is rendered and then evaluated in one run
    assert names == (["materialize_prompt_template_to_template_evaluation"] * len(TEMPLATES)
                     + ["materialize_prompt_question_to_answer"])
    evaluated = instance.get_materialized_partitions(dg.AssetKey(["prompt", "template_evaluation"]))
    assert evaluated == set(TEMPLATES)


def test_ask_prompt_with_a_template(registry_with_tiny_model, capsys):
    assert main(["ask", "prompt", "What is a series?", "--json", "--template", "pandas_example"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["template"] == "pandas_example"
    assert main(["ask", "prompt", "What is a series?", "--template", "pandsa"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: unknown template 'pandsa': choose one of {', '.join(TEMPLATES)}"


def test_ask_prompt_refuses_what_the_template_rules_refuse_with_one_line(tmp_home, capsys, monkeypatch):
    """The chosen template's variable rules are checked before any run starts."""
    from reference_arch_tests.prompt.test_prompt import strict_template

    monkeypatch.setitem(TEMPLATES, "strict", strict_template())
    assert main(["ask", "prompt", "What is {question}?", "--template", "strict"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: template 'strict' refuses the question: it holds '{question}', a template placeholder")
    assert main(["ask", "prompt", "Why does f'{' fail?", "--template", "strict"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: template 'strict' refuses the question: 1 '{' never closed (unbalanced braces)")
    assert dg.DagsterInstance.get().get_runs() == []


def test_demo_lines_say_what_happened(registry_with_tiny_model):
    """The demo's cache wording, its expected-offline label and its local-model line, on real runs:
    `materialize prompt` answers the default question, so asking it again is a cache hit *from that
    materialization*; a new question costs tokens."""
    from reference_arch.cli import answers, demo, runs

    instance = dg.DagsterInstance.get()
    results = runs.materialize_location("prompt", instance, echo=lambda *a, **k: None)
    answered = runs.questions_answered(results)
    assert answered == {"prompt": {"What is a series?"}}

    lines = runs.check_summary(results, demo.OFFLINE_EXPECTED_FAILURES)
    assert any("answer_format" in line for line in lines)
    for line in lines:
        assert ("expected offline" in line) == ("answer_format FAILED" in line), line

    again = answers.ask("prompt", "What is a series?", instance)
    assert again["usage"]["cache_hits"] == 1
    assert "`materialize prompt` above sent this same prompt" in demo.usage_line(again, True, "prompt")
    fresh = answers.ask("prompt", "What is a DataFrame?", instance)
    assert fresh["usage"]["cache_hits"] == 0 and demo.usage_line(fresh, False, "prompt").startswith("tokens ")

    from reference_arch.common.resources import llm_resource

    line = demo.local_model_line(llm_resource(), 120.0)
    assert line.startswith("Chat model: registry:tiny-lm@1.") and "OPENAI_API_KEY" in line


def test_ask_json_has_one_shape_for_every_target(registry_with_tiny_model, tmp_path, monkeypatch, capsys):
    """prompt, rag and finetuned print the same keys (question included), then their own extras; the
    answer assets carry the question (and rag its retrieval mode and k) as metadata for the UI."""
    from reference_arch.cli.answers import ASK_TARGETS
    from reference_arch.cli.demo import DEMO_QUESTIONS
    from reference_arch.common.questions import ANSWER_KEYS
    from reference_arch.finetune.config import FINETUNED_MODEL
    from reference_arch_tests.production.conftest import build_rag_index, tiny_rag_exports

    for name, value in tiny_rag_exports(tmp_path / "exports").items():
        monkeypatch.setenv(name, value)
    instance = dg.DagsterInstance.get()
    build_rag_index(instance)
    tiny = registry_with_tiny_model.get("tiny-lm")
    registry_with_tiny_model.publish(FINETUNED_MODEL, tiny.path, {"kind": "test"})

    extras = {"prompt": {"template", "template_hash"}, "rag": {"mode", "k", "answerer"}, "finetuned": set()}
    for target, question in DEMO_QUESTIONS.items():
        assert main(["ask", target, question, "--json"]) == 0, target
        record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert set(record) == {*ANSWER_KEYS, "run_id", *extras[target]}, target
        assert record["question"] == question and isinstance(record["sources"], list), target

        location_prefix = ASK_TARGETS[target][2]
        stored = instance.fetch_materializations(dg.AssetKey([location_prefix, "answer"]), limit=1).records[0]
        metadata = stored.asset_materialization.metadata
        assert stored.run_id == record["run_id"] and metadata["question"].value == question, target
        if target == "rag":
            assert metadata["mode"].value == record["mode"] and metadata["k"].value == record["k"] == 5


@dg.asset(key=["demo", "slow"])
def slow_asset() -> None:
    time.sleep(1.0)


def test_a_long_run_names_the_step_it_is_in_while_it_runs():
    """Pretraining is one run of several minutes: the CLI says which step it is in, not nothing."""
    from reference_arch.cli.runs import heartbeat

    lines: list[str] = []
    with dg.DagsterInstance.ephemeral() as inst:
        run_id = str(uuid.uuid4())
        job = dg.Definitions(assets=[slow_asset]).resolve_implicit_global_asset_job_def()
        with heartbeat(inst, run_id, lambda text, **_: lines.append(text), every=0.3):
            assert job.execute_in_process(instance=inst, run_id=run_id).success
    assert any("demo/slow" in line for line in lines), lines
    assert all(line.startswith("\n    ... ") and line.endswith(" min in") for line in lines), lines


def test_demo_names_every_local_model_and_aligns_its_stage_times(registry_with_tiny_model, tiny_model_dir, capsys):
    """The banner names each local model with its role (not only the newest, which may not be the one that
    answers); the time table stays aligned whatever a stage is called."""
    from reference_arch.cli import demo

    registry_with_tiny_model.publish("code-lm", tiny_model_dir, {"parameters": 1_900_000})
    registry_with_tiny_model.publish("code-lm-github", tiny_model_dir, {"base_model": "packaged:smollm2-135m-instruct"})
    registry_with_tiny_model.publish("code-lm-preference", tiny_model_dir, {})
    registry_with_tiny_model.publish("code-lm-preference", tiny_model_dir, {"base_model": "registry:code-lm-github@1"})
    from reference_arch.common.llm.resource import LLMResource

    line = demo.local_model_line(LLMResource(), 310.0)
    assert line.startswith("Chat model: packaged:smollm2-135m-instruct: SmolLM2-135M-Instruct (135M parameters, "
                           "Q4_1 GGUF, Apache-2.0), shipped in a Python package.")
    # each its own size or base: the fine-tuned model was called 1.9M, "that model fine-tuned", though tuned from SmolLM2
    assert ("registry:tiny-lm@1; registry:code-lm@1 (1.9M parameters, pretrained from scratch here in 310s); "
            "registry:code-lm-github@1 (LoRA-fine-tuned on the issues' grounded answers, from "
            "packaged:smollm2-135m-instruct (SmolLM2-135M-Instruct, 135M parameters, Q4_1 GGUF, Apache-2.0)); "
            "registry:code-lm-preference@2 (preference-tuned (DPO) on the feedback, from registry:code-lm-github@1") in line
    assert "REFERENCE_ARCH_LLM_MODEL=<spec>" in line

    demo.print_summary([], {"pretrain": 310.0, "preference round": 23.5})
    rows = capsys.readouterr().out.split("== time per stage\n")[1].splitlines()
    assert len({row.index("s", len("  preference round")) for row in rows}) == 1, rows  # one column of seconds


def test_demo_rag_answer_keeps_each_citation_on_its_sentence_line(capsys):
    """The demo's extractive answer (as a newcomer saw it printed) wraps at 100 columns; a ``[1]`` that
    wrapped to the start of a line read like an entry of the numbered source list beneath it."""
    from reference_arch.cli import demo

    record = {"answer": "Alter Series index labels or name. [1] Alternatively, change ``Series.name`` with a scalar "
                        "value. [1] This method sets or changes the name of the index (axis) of the Series. [2]",
              "answerer": "extractive", "model": "extractive:all-MiniLM-L6-v2",
              "sources": [{"title": "pandas.Series.rename", "source": "pandas.Series.rename", "score": 0.736},
                          {"title": "pandas.Series.rename_axis", "source": "pandas.Series.rename_axis", "score": 0.671}]}
    demo.print_rag_answer(record, "")
    lines = capsys.readouterr().out.splitlines()
    answer = lines[: lines.index("  Sources:")]
    assert len(answer) > 1 and all(len(line) <= 100 for line in answer), answer
    assert not any(line.lstrip().startswith("[") for line in answer), answer
    assert " ".join(line.strip() for line in answer) == record["answer"]
    assert lines[lines.index("  Sources:") + 1].startswith("  [1] pandas.Series.rename (")

    from reference_arch.cli.answers import print_answer  # `ask rag` without --json: the same list

    print_answer({**record, "run_id": "r1"}, as_json=False)
    assert capsys.readouterr().out.splitlines()[1:4] == lines[lines.index("  Sources:"):][:3]
    print_answer({**record, "sources": [], "run_id": "r1"}, as_json=False)
    assert capsys.readouterr().out.splitlines()[1].startswith("-- model")  # no heading, no blank line


def test_materialize_leaves_out_the_keys_it_is_told_to(tmp_home):
    """The demo materializes finetune without its preference step, which it runs once, after the feedback round
    (it ran DPO twice: before the verdicts and with them, 8 minutes each)."""
    from reference_arch.cli import runs
    from reference_arch.prompt.definitions import defs

    keep = dg.AssetKey(["prompt", "template"])
    others = frozenset(defs.resolve_asset_graph().get_all_asset_keys()) - {keep}
    with dg.DagsterInstance.get() as instance:
        results = runs.materialize_location("prompt", instance, echo=lambda *a, **k: None, exclude=others)
    assert {e.asset_key for r in results for e in r.get_asset_materialization_events()} == {keep}


@dg.asset(key=["rag", "docs_pages"], metadata={"dlt_source": "docs"})
def docs_pages() -> None:
    pass


@dg.asset(key=["rag", "github_issues"], metadata={"dlt_source": "github"})
def github_issues() -> None:
    pass


def test_materialize_leaves_out_the_sources_switched_off(monkeypatch):
    """A trial with REFERENCE_ARCH_RAG_SOURCES=docs watched the GitHub and Slack steps run (a run per partition
    each, loading nothing); they are now named once and left out."""
    from reference_arch.cli import runs

    monkeypatch.setenv("REFERENCE_ARCH_RAG_SOURCES", "docs")
    monkeypatch.setattr(runs, "load_defs", lambda location: dg.Definitions(assets=[docs_pages, github_issues]))
    lines: list[str] = []
    with dg.DagsterInstance.ephemeral() as instance:
        results = runs.materialize_location("rag", instance, echo=lambda text="", end="\n", **_: lines.append(text + end),
                                            exclude=(dg.AssetKey(["rag", "other"]),))  # a tuple, as the demo's
    printed = "".join(lines)
    assert printed.startswith("  [rag] github switched off (REFERENCE_ARCH_RAG_SOURCES, or other sources configured): "
                              "1 asset skipped\n"), printed
    assert [e.asset_key for r in results for e in r.get_asset_materialization_events()] == [docs_pages.key]


def test_a_side_by_side_answer_keeps_its_lines_under_its_label():
    """The demo's base / fine-tuned / preference-tuned answers ran as raw text across the comparison (a model's
    code fence and paragraphs at the left margin); each line now sits under its label, cut after five."""
    from reference_arch.cli.demo import side_by_side

    rambling = "The error occurs.\n\nTo fix it:\n```\nframe.join(other)\n```\nThis works.\nNote: more."
    assert side_by_side("base     ", rambling).splitlines() == [
        "  base      The error occurs.",
        "            To fix it:",
        "            ```",
        "            frame.join(other)",
        "            ```",
        "            [... 2 more lines]",
    ]
    assert side_by_side("finetuned", " \n") == "  finetuned (empty answer)"
