"""TrainerResource: the shared training entry point through the real Pipes subprocess."""

import json

import dagster as dg
import datasets
import pytest
import torch

from reference_arch.common.trainer.data import collate_blocks
from reference_arch.common.trainer.device import pick_device, use_bf16
from reference_arch.common.trainer.resource import TrainerResource, train_spec
from reference_arch.common.trainer.spec import TrainSpecError, parse_spec


def _asset(spec: dict, sink: dict):
    @dg.asset
    def trained(context: dg.AssetExecutionContext, trainer: TrainerResource) -> dg.MaterializeResult:
        run = trainer.run(context, spec, on_message=lambda m: sink.setdefault("events", []).append(m["event"]))
        sink["run"] = run
        return dg.MaterializeResult(metadata=run.metadata())

    return trained


def _masked_dataset(path, n=16, length=24):
    """Blocks whose first half is a 'prompt' masked out of the loss, with padding at the end."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 300, (n, length), generator=g)
    labels = ids.clone()
    labels[:, : length // 2] = -100
    mask = torch.ones_like(ids)
    mask[:, -2:] = 0
    labels[:, -2:] = -100
    datasets.Dataset.from_dict({"input_ids": ids.tolist(), "labels": labels.tolist(),
                                "attention_mask": mask.tolist()}).save_to_disk(str(path))
    return path


def test_lora_with_masked_labels_through_pipes(tmp_home, instance, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    spec = {"model_dir": str(tiny_model_dir), "train_data": [str(_masked_dataset(tmp_path / "data"))],
            "eval_data": [str(tmp_path / "data")], "output_dir": str(tmp_path / "out"), "max_steps": 4,
            "batch_size": 4, "checkpoint_every": 2, "log_every": 1, "lr": 1e-2,
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["c_attn"]}}
    sink: dict = {}
    result = dg.materialize([_asset(spec, sink)], instance=instance, resources={"trainer": TrainerResource(device="cpu")})
    assert result.success
    summary = sink["run"].summary
    assert summary["global_step"] == 4 and summary["eval_loss"] > 0
    assert 0 < summary["trainable_params"] < summary["total_params"] / 10
    assert sink["events"][0] == "start" and sink["events"].count("checkpoint") == 2 and sink["events"][-1] == "done"
    # The adapter alone, and the merged model that loads like any causal LM.
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(summary["model_dir"])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not torch.equal(merged.transformer.h[0].attn.c_attn.weight, base.transformer.h[0].attn.c_attn.weight)
    assert torch.equal(merged.transformer.h[0].mlp.c_fc.weight, base.transformer.h[0].mlp.c_fc.weight)
    meta = result.asset_materializations_for_node("trained")[0].metadata
    assert meta["train/trainable_params"].value == summary["trainable_params"]


@pytest.mark.parametrize("settings, reason", [
    ({"learning_rate": 1.0}, "bad training settings: unknown setting 'learning_rate'"),
    ({"max_steps": 0, "lora": {"rank": 4}}, "max_steps must be at least 1 (got 0); unknown setting 'lora.rank'"),
])
def test_bad_settings_fail_in_the_assets_process_with_the_reason(tmp_home, instance, tmp_path, settings, reason):
    spec = {"model_dir": "x", "train_data": ["y"], "output_dir": str(tmp_path), **settings}
    sink: dict = {}
    result = dg.materialize([_asset(spec, sink)], instance=instance, raise_on_error=False,
                            resources={"trainer": TrainerResource(device="cpu")})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert reason in str(failure.event_specific_data.error)
    assert "events" not in sink  # no training process was started to find out


def test_one_spec_on_both_sides_of_pipes():
    """The asset's TrainSpec, as the extras carry it (JSON, the resource's device filled in where the
    spec leaves it unset), parses back to the same spec in the entry point."""
    spec = train_spec(model_dir="m", train_data="d", output_dir="o", lora={"r": 4}, precision="fp32")
    extras = TrainerResource(device="cpu", precision="bf16").extras(spec)
    assert json.loads(json.dumps(extras)) == extras
    assert parse_spec(extras) == spec.model_copy(update={"device": "cpu"})  # precision: the spec's own
    with pytest.raises(TrainSpecError, match="model_dir"):
        parse_spec({"output_dir": "o", "train_data": "d"})
    with pytest.raises(dg.Failure, match="did you mean 'max_steps'"):
        train_spec(model_dir="m", train_data="d", output_dir="o", max_step=3)
    # Another entry point's settings pass as they are, after the resource's device and precision.
    assert TrainerResource().extras({"run_name": "r"}, "my.entry") == {
        "device": "auto", "compile": False, "precision": "auto", "run_name": "r"}


def test_report_to_is_the_resources_passed_to_the_trainer_and_a_bad_one_is_one_line():
    from reference_arch.common.trainer.loop import training_arguments

    spec = train_spec(model_dir="m", train_data="d", output_dir="o")
    assert TrainerResource().extras(spec)["report_to"] == "none"
    extras = TrainerResource(report_to="tensorboard").extras(spec)
    assert extras["report_to"] == "tensorboard"
    assert training_arguments(parse_spec(extras), "cpu", False, evaluate=False).report_to == ["tensorboard"]
    assert training_arguments(spec, "cpu", False, evaluate=False).report_to == []  # "none": no integration
    with pytest.raises(dg.Failure) as failure:
        TrainerResource(report_to="comet").extras(spec)
    assert failure.value.description == (
        "unknown trainer report_to 'comet': use 'none', 'tensorboard', 'mlflow', 'wandb'")
    with pytest.raises(dg.Failure, match=r"^bad training settings: report_to: .*\(got 'comet'\)$"):
        train_spec(model_dir="m", train_data="d", output_dir="o", report_to="comet")


def test_report_to_is_a_setting(monkeypatch):
    """A CLI user has no run config: REFERENCE_ARCH_TRAINER_REPORT_TO reaches the trainer resource the assets get."""
    from reference_arch.common.resources import trainer_resource
    from reference_arch.common.settings import SettingsError

    assert trainer_resource().report_to == "none"
    monkeypatch.setenv("REFERENCE_ARCH_TRAINER_REPORT_TO", "tensorboard")
    assert trainer_resource().report_to == "tensorboard"
    monkeypatch.setenv("REFERENCE_ARCH_TRAINER_REPORT_TO", "comet")
    with pytest.raises(SettingsError, match=r"^REFERENCE_ARCH_TRAINER_REPORT_TO='comet': not a choice; use 'none', "):
        trainer_resource()


def _png_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height, after checking its signature, its chunks' checksums and its image data."""
    import struct
    import zlib

    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    at, chunks = 8, {}
    while at < len(data):
        (length,), kind = struct.unpack(">I", data[at:at + 4]), data[at + 4:at + 8]
        body = data[at + 8:at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0] == zlib.crc32(kind + body), kind
        chunks[kind] = chunks.get(kind, b"") + body
        at += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    assert b"IEND" in chunks and zlib.decompress(chunks[b"IDAT"])
    return width, height


def test_the_loss_curve_as_a_png():
    import base64

    from reference_arch.common.trainer.plot import loss_plot_markdown, loss_png

    assert _png_size(loss_png([10, 20, 30], [4.0, 3.1, 3.3])) == (640, 280)
    assert _png_size(loss_png([5], [2.0])) == (640, 280)  # one report: a dot
    curve = [{"step": 10, "loss": 4.0}, {"step": 20, "loss": float("nan")}, {"step": 30, "loss": 2.5}]
    markdown = loss_plot_markdown(curve)
    image, caption = markdown.split("\n\n")
    assert image.startswith("![training loss](data:image/png;base64,") and image.endswith(")")
    assert _png_size(base64.b64decode(image.split(",", 1)[1][:-1]))
    assert caption == "Training loss 4 at step 10 -> 2.5 at step 30 (lowest 2.5, 2 reports)"  # the nan left out
    assert loss_plot_markdown([]) is None and loss_plot_markdown([{"step": 1, "loss": float("inf")}]) is None


def test_pretrain_run_config_is_the_trainers_schedule():
    from reference_arch.common.trainer.spec import TrainSchedule
    from reference_arch.pretrain.defs.training import TrainConfig

    assert set(TrainSchedule.model_fields) <= set(TrainConfig.model_fields)
    assert set(TrainConfig.model_fields) - set(TrainSchedule.model_fields) == {"fresh"}
    config = TrainConfig(max_steps=7, max_grad_norm=0.5)
    spec = train_spec(**config.schedule(), model_dir="m", train_data="d", output_dir="o")
    assert (spec.max_steps, spec.max_grad_norm, spec.batch_size) == (7, 0.5, 4)
    assert "log_every" not in config.weight_settings() and config.weight_settings()["lr"] == 3e-3
    with pytest.raises(dg.Failure, match="warmup_steps must be at least 0"):
        train_spec(**TrainConfig(warmup_steps=-1).schedule(), model_dir="m", train_data="d", output_dir="o")


def test_one_device_picker():
    assert pick_device("auto", cuda_available=False) == "cpu" and pick_device("auto", cuda_available=True) == "cuda"
    assert pick_device("cuda:1") == "cuda:1" and pick_device() in ("cpu", "cuda")
    assert use_bf16("auto", "cuda:0") and not use_bf16("auto", "cpu") and use_bf16("bf16", "cpu")


def test_entry_point_without_dagster(tiny_model_dir, tmp_path):
    """``python -m ...entry --config spec.json``: the same spec, from a file, reports on stdout."""
    import subprocess
    import sys

    spec = train_spec(model_dir=str(tiny_model_dir), train_data=str(_masked_dataset(tmp_path / "data", n=8)),
                      output_dir=str(tmp_path / "out"), max_steps=2, batch_size=4, checkpoint_every=0, log_every=1,
                      device="cpu", peak_flops=1e9)
    (tmp_path / "spec.json").write_text(spec.model_dump_json())
    done = subprocess.run([sys.executable, "-m", "reference_arch.common.trainer.entry", "--config",
                           str(tmp_path / "spec.json")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert messages[0]["event"] == "start" and messages[-1]["event"] == "done"
    assert messages[-1]["global_step"] == 2 and (tmp_path / "out" / "final" / "config.json").is_file()


def test_collation():
    rows = [{"input_ids": torch.tensor([1, 2, 3])}, {"input_ids": torch.tensor([4, 5, 6])}]
    batch = collate_blocks(rows)
    assert torch.equal(batch["labels"], batch["input_ids"]) and "attention_mask" not in batch
    masked = collate_blocks([dict(r, labels=torch.tensor([-100, 2, 3])) for r in rows])
    assert masked["labels"][:, 0].tolist() == [-100, -100]


def test_launchers():
    assert TrainerResource().command()[1:] == ["-m", "reference_arch.common.trainer.entry"]
    torchrun = TrainerResource(launcher="torchrun", nproc_per_node=4).command()
    assert "--nproc_per_node=4" in torchrun and torchrun[-2:] == ["-m", "reference_arch.common.trainer.entry"]
    with pytest.raises(dg.Failure, match="unknown trainer launcher"):
        TrainerResource(launcher="slurm").command()


def test_the_training_setup_gives_the_libraries_no_cause_to_warn(tiny_model_dir, tmp_path):
    """What transformers and peft warned about in the demo, fixed at the cause: the causal-LM loss is
    named, LoRA on GPT-2's Conv1D projections says fan_in_fan_out, the padded fine-tuning examples
    carry an attention mask."""
    import warnings

    from transformers import AutoModelForCausalLM

    from reference_arch.common.trainer.causal_lm import use_causal_lm_loss
    from reference_arch.common.trainer.models import apply_lora
    from reference_arch.finetune.local_backend import build_dataset, load_chat_tokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert use_causal_lm_loss(model).loss_type == "ForCausalLM"  # transformers names none for GPT2LMHeadModel
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lora = apply_lora(model, train_spec(model_dir="m", train_data="d", output_dir="o", lora={"r": 2}).lora)
    assert not [str(w.message) for w in caught], [str(w.message) for w in caught]
    assert lora.peft_config["default"].fan_in_fan_out is True

    tokenizer = load_chat_tokenizer(str(tiny_model_dir))
    examples = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
                for q, a in [("What is a series?", "A 1-d array."), ("Add?", "def add(a, b): return a + b")]]
    build_dataset(tokenizer, examples, 64, tmp_path / "data")
    rows = datasets.load_from_disk(str(tmp_path / "data"))
    for ids, mask in zip(rows["input_ids"], rows["attention_mask"]):
        assert len(mask) == len(ids) and mask == sorted(mask, reverse=True) and 0 < sum(mask)
    assert any(0 in mask for mask in rows["attention_mask"])  # the shorter example is padded, and masked


def test_a_resumed_run_takes_its_own_checkpoint_and_log_intervals(tiny_model_dir, tmp_path):
    """Started with checkpoint_every=2, log_every=2 and resumed with 1 and 1: the Trainer restores the
    intervals saved in trainer_state.json, so the resumed run checkpointed and reported only at 4 and 6."""
    import subprocess
    import sys

    data = str(_masked_dataset(tmp_path / "data", n=8))

    def run(max_steps: int, every: int) -> tuple[list[dict], str]:
        spec = train_spec(model_dir=str(tiny_model_dir), train_data=data, output_dir=str(tmp_path / "out"),
                          max_steps=max_steps, batch_size=4, checkpoint_every=every, log_every=every, warmup_steps=0,
                          device="cpu", peak_flops=1e9)
        (tmp_path / "spec.json").write_text(spec.model_dump_json())
        done = subprocess.run([sys.executable, "-m", "reference_arch.common.trainer.entry", "--config",
                               str(tmp_path / "spec.json")], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")], done.stdout

    first, _ = run(max_steps=2, every=2)
    assert [m["step"] for m in first if m["event"] == "checkpoint"] == [2]
    resumed, out = run(max_steps=6, every=1)
    assert resumed[0]["resumed_from_step"] == 2
    assert [m["step"] for m in resumed if m["event"] == "checkpoint"] == [3, 4, 5, 6]
    assert [m["step"] for m in resumed if m["event"] == "metrics"] == [3, 4, 5, 6]
    assert "intervals: checkpoint every 1 steps (was 2), log every 1 steps (was 2)" in out  # said in one line
