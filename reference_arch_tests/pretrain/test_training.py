"""Init, training through the real Pipes subprocess, checkpoints as partitions, evaluation gate,
publishing and loading through LLMResource; and a training process killed mid-run, then resumed."""

from __future__ import annotations

import base64
import json
import re
import signal
import threading
import time

import dagster as dg
import psutil
import pytest

from reference_arch.cli.progress import RunEvents
from reference_arch.common.registry import ModelRegistry
from reference_arch.pretrain import store
from reference_arch_tests.pretrain.conftest import metadata, check_results, materialize, prepare_data, run_config


def test_train_evaluate_publish_and_ask(tmp_home, instance, corpus_dir):
    config = run_config(corpus_dir)
    prepare_data(instance, config)
    trained = materialize(instance, ["initial_model", "trained_model"], config)
    meta = metadata(trained, "trained_model")
    assert meta["train/global_step"].value == 6 and meta["train/steps_this_run"].value == 6
    assert meta["train/tokens_seen"].value == 6 * 4 * 32
    assert meta["train/tokens_per_s"].value > 0 and 0 < meta["train/mfu"].value
    assert len(meta["train/loss_curve"].value.records) == 3  # one row per log step
    # The same curve as a picture the UI shows: a PNG in Markdown.
    plot = re.fullmatch(r"!\[training loss\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)\n\n(.+)",
                        meta["train/loss_plot"].value)
    assert plot and base64.b64decode(plot[1]).startswith(b"\x89PNG\r\n\x1a\n"), meta["train/loss_plot"].value[:80]
    assert "at step 2 ->" in plot[2] and "at step 6 " in plot[2] and "3 reports" in plot[2]
    # What the trainer logs through Pipes is what the CLI's live progress reads from the run's event log.
    reports = list(RunEvents(instance, trained.run_id).read())
    assert [(r.step, r.kind, r.done, r.total) for r in reports] == [
        ("pretrain/trained_model", "train", step, 6) for step in (2, 4, 6)]
    assert [round(r.loss, 4) for r in reports] == [round(row.data["loss"], 4)
                                                   for row in meta["train/loss_curve"].value.records]
    # Each checkpoint became a partition of pretrain/checkpoints, materialized with its metrics.
    keys = instance.get_dynamic_partitions("pretrain_checkpoints")
    assert [k.rsplit("-", 1)[1] for k in keys] == ["step000003", "step000006"]
    recorded = instance.get_latest_materialization_event(dg.AssetKey(["pretrain", "checkpoints"]))
    assert recorded.asset_materialization.partition == keys[-1]
    assert recorded.asset_materialization.metadata["step"].value == 6

    evaluated = materialize(instance, ["checkpoints"], config, partition=keys[0])
    ck = metadata(evaluated, "checkpoints")
    assert ck["validation_perplexity"].value > 1 and ck["step"].value == 3

    # A strict gate blocks publishing in the same run; nothing reaches the registry.
    strict = run_config(corpus_dir, evaluation={"min_parse_rate": 1.01})
    blocked = materialize(instance, ["evaluation", "published_model"], strict, raise_on_error=False)
    assert check_results(blocked)["evaluation_gate"] is False
    assert not blocked.asset_materializations_for_node("pretrain__published_model")
    assert ModelRegistry().list() == []
    # Publishing alone, later, still refuses the failed evaluation.
    alone = materialize(instance, ["published_model"], config, raise_on_error=False)
    assert not alone.success and ModelRegistry().list() == []

    passed = materialize(instance, ["evaluation", "published_model"], config)
    checks = check_results(passed)
    assert checks == {"evaluation_gate": True, "published_model_loads": True}
    evaluation = metadata(passed, "evaluation")
    assert evaluation["perplexity"].value > 1 and 0 <= evaluation["parse_rate"].value <= 1
    model = ModelRegistry().get("code-lm")
    card = model.card
    assert card["steps"] == 6 and card["tokens_seen"] == 768 and card["corpus_hash"]
    assert card["tokenizer"]["vocab_size"] == 400 and card["metrics"]["perplexity"] > 1
    assert card["config"]["n_layer"] == 2 and card["trained_at"] and card["published_at"]
    assert (model.path / "config.json").exists() and (model.path / "tokenizer.json").exists()
    # Re-materializing publishes no identical version (a trial saw code-lm@2 equal to @1 after a re-run).
    again = materialize(instance, ["published_model"], config)
    assert metadata(again, "published_model")["model"].value == "registry:code-lm@1"
    assert [m.spec for m in ModelRegistry().list()] == ["registry:code-lm@1"]

    from reference_arch.common.llm.resource import LLMResource

    llm = LLMResource(model="registry:code-lm@latest", max_tokens=4, cache=False)  # the model pretrained here
    assert llm.resolved_provider() == "local" and llm.resolved_model() == "registry:code-lm@1"
    assert isinstance(llm.generate("def"), str)  # the test preset reads 32 tokens, chat template included
    assert llm.usage_metadata()["llm/completion_tokens"] > 0


def _training_process():
    for child in psutil.Process().children(recursive=True):
        try:
            if "reference_arch.common.trainer.entry" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


def _batches(run_dir) -> list[dict]:
    path = run_dir / "batches.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_killed_training_resumes_from_its_latest_checkpoint(tmp_home, instance, corpus_dir):
    from reference_arch.common.trainer.checkpoints import latest_checkpoint

    # Enough steps after the first checkpoint for the test to catch training mid-way.
    config = run_config(corpus_dir, trained_model={"max_steps": 30, "checkpoint_every": 3, "batch_size": 8})
    prepare_data(instance, config)
    materialize(instance, ["initial_model"], config)

    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(
        first=materialize(instance, ["trained_model"], config, raise_on_error=False)))
    runner.start()
    deadline = time.monotonic() + 240
    run_dir = None
    while time.monotonic() < deadline:  # kill once a checkpoint is complete and a later step has run
        runs = [p for p in store.path("runs").iterdir() if p.is_dir()]
        if runs:
            run_dir = runs[0]
            done = latest_checkpoint(run_dir)
            steps = [b["step"] for b in _batches(run_dir)]
            if done is not None and steps and steps[-1] > int(done.name.split("-")[1]):
                process = _training_process()
                if process is not None:
                    process.send_signal(signal.SIGKILL)
                    break
        time.sleep(0.02)
    runner.join(timeout=120)
    first = outcome["first"]
    assert not first.success, "the training finished before the test could kill it"
    failure = next(e for e in first.all_events if e.event_type_value == "STEP_FAILURE")
    assert "killed by signal 9" in str(failure.event_specific_data.error)

    resumed_from = int(latest_checkpoint(run_dir).name.split("-")[1])
    assert 3 <= resumed_from < 30
    before = _batches(run_dir)
    # Checkpoints written before the kill are already partitions.
    assert instance.get_dynamic_partitions("pretrain_checkpoints")[-1].endswith(f"step{resumed_from:06d}")

    second = materialize(instance, ["trained_model"], config)
    meta = metadata(second, "trained_model")
    assert meta["train/resumed_from_step"].value == resumed_from
    assert meta["train/global_step"].value == 30
    assert meta["train/steps_this_run"].value == 30 - resumed_from

    # Data position: the resumed run trained on exactly the batches an uninterrupted run would have.
    first_pid = before[0]["pid"]
    killed = {b["step"]: b["rows"] for b in before if b["pid"] == first_pid}
    after = {b["step"]: b["rows"] for b in _batches(run_dir) if b["pid"] != first_pid}
    assert sorted(after) == list(range(resumed_from + 1, 31))
    overlap = [s for s in after if s in killed]
    assert overlap, "no step ran both before the kill and after the resume"
    for step in overlap:
        assert after[step] == killed[step]
    seen = [row for step in range(1, resumed_from + 1) for row in killed[step]]
    seen += [row for step in sorted(after) for row in after[step]]
    train_blocks = store.read_manifest("training_dataset")["train_blocks"]
    epoch = train_blocks // 8 * 8
    assert len(set(seen[:epoch])) == len(seen[:epoch])  # no block twice within an epoch
    keys = instance.get_dynamic_partitions("pretrain_checkpoints")
    assert [k.rsplit("step", 1)[1] for k in keys] == [f"{s:06d}" for s in range(3, 31, 3)]


@pytest.mark.parametrize("preset_config", [{"init_from": "registry:tiny-lm@latest", "n_layer": 3}])
def test_growing_needs_the_same_tokenizer(registry_with_tiny_model, instance, corpus_dir, preset_config,
                                         monkeypatch):
    from reference_arch.common.trainer import causal_lm

    loads: list[str] = []
    load_model = causal_lm.load_model
    monkeypatch.setattr(causal_lm, "load_model", lambda path, **kw: loads.append(path) or load_model(path, **kw))
    config = run_config(corpus_dir, initial_model=preset_config)
    prepare_data(instance, config)
    mismatch = materialize(instance, ["initial_model"], config, raise_on_error=False)
    assert not mismatch.success
    failure = next(e for e in mismatch.all_events if e.event_type_value == "STEP_FAILURE")
    assert "another tokenizer" in str(failure.event_specific_data.error)
    # With the model's own tokenizer the data is re-tokenized and the model grows by a layer.
    config = run_config(corpus_dir, initial_model=preset_config,
                        tokenizer={"from_model": "registry:tiny-lm@latest"},
                        token_shards={"block_size": 32, "validation_fraction": 0.2})
    prepare_data(instance, config)
    loads.clear()
    grown = materialize(instance, ["initial_model"], config)
    meta = metadata(grown, "initial_model")
    assert meta["layers"].value == 3 and "upscaled from registry:tiny-lm@1" in meta["how"].value
    assert len(loads) == 1, loads  # the source model is loaded once: checked, then resized
