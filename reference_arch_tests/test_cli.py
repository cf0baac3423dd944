"""The CLI end to end on a temporary home and instance."""

import json

import dagster as dg

from reference_arch.cli import main


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


def test_ask_without_a_model_says_what_to_do(tmp_home, capsys):
    assert main(["ask", "prompt", "What is a series?"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "materialize the pretrain location" in err[0].lower()


def test_materialize_prompt_every_partition(registry_with_tiny_model, capsys):
    assert main(["materialize", "prompt"]) == 0
    out = capsys.readouterr().out
    assert "prompt/answer" in out and "answer_format" in out
    instance = dg.DagsterInstance.get()
    materialized = instance.get_materialized_partitions(dg.AssetKey(["prompt", "answer"]))
    assert materialized == {"pandas", "pandas_example"}
