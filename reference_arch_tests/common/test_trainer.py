"""TrainerResource: the shared training entry point through the real Pipes subprocess."""

import dagster as dg
import datasets
import pytest
import torch

from reference_arch.common.trainer.entry import TrainSpec, collate_blocks
from reference_arch.common.trainer.resource import TrainerResource


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


def test_bad_settings_fail_with_the_reason(tmp_home, instance, tmp_path):
    spec = {"model_dir": "x", "train_data": ["y"], "output_dir": str(tmp_path), "learning_rate": 1.0}
    result = dg.materialize([_asset(spec, {})], instance=instance, raise_on_error=False,
                            resources={"trainer": TrainerResource(device="cpu")})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "unknown training settings ['learning_rate']" in str(failure.event_specific_data.error)


def test_spec_validation_and_collation():
    with pytest.raises(ValueError, match="model_dir"):
        TrainSpec.from_extras({"output_dir": "o", "train_data": "d"})
    assert TrainSpec.from_extras({"output_dir": "o", "train_data": "d", "model_dir": "m"}).train_data == ["d"]
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
    from reference_arch.common.trainer.entry import _apply_lora
    from reference_arch.finetune.local_backend import build_dataset, load_chat_tokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert use_causal_lm_loss(model).loss_type == "ForCausalLM"  # transformers names none for GPT2LMHeadModel
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lora = _apply_lora(model, {"r": 2})
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
