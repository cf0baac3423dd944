"""Fine-tuning: LoRA step time against full fine-tuning of the same model, the trainable fraction,
and the demo's fine-tuning (the sample export, through the real trainer) end to end.

The model is the newest ``code-lm`` in the registry (what the demo fine-tunes), or a random model
of the pretrain location's ``tiny`` preset when none is published yet. The batch is the demo's:
``batch_size`` x ``max_seq_len`` of ``FineTuningResource``. Step times are medians, interleaved so
machine noise hits both alike; only the same-run ratio is meaningful on a shared machine.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import reference_arch  # noqa: F401  (offline switches)

STEPS = 8
DEMO_TARGET_S = 120.0
FRACTION_TARGET = 0.10


def _base_model_dir(workdir: Path) -> tuple[str, str]:
    """(description, directory) of the model to fine-tune."""
    from reference_arch.common.registry import ModelNotFoundError, ModelRegistry

    try:
        found = ModelRegistry().get("code-lm")
        return found.spec, str(found.path)
    except ModelNotFoundError:
        pass
    import glob
    import sysconfig

    from reference_arch.common.trainer.model_init import build_model
    from reference_arch.pretrain.tokenization import train_tokenizer

    # The pretrain location's shape: its byte-level BPE of 8,192 tokens on Python source, the tiny preset.
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))[:100]
    tokenizer = train_tokenizer((Path(f).read_text(errors="ignore") for f in files), vocab_size=8192)
    model, how = build_model(preset="tiny", arch="gpt2", context_length=256, tokenizer=tokenizer)
    model.save_pretrained(workdir / "base")
    tokenizer.save_pretrained(workdir / "base")
    return f"{how} (no code-lm in the registry)", str(workdir / "base")


def _step_times(model_dir: str, settings) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from reference_arch.common.trainer.models import apply_lora
    from reference_arch.common.trainer.spec import LoraSpec
    from reference_arch.finetune.local_backend import lora_settings

    def make(lora: bool):
        model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa")
        model.config.use_cache = False
        if lora:  # the trainer's LoRA, with the fine-tuning settings
            model = apply_lora(model, LoraSpec(**lora_settings(settings)))
        params = [p for p in model.parameters() if p.requires_grad]
        return model.train(), torch.optim.AdamW(params, lr=settings.learning_rate)

    models = {"lora": make(True), "full": make(False)}
    lora_model = models["lora"][0]
    trainable = sum(p.numel() for p in lora_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in lora_model.parameters())
    vocab = lora_model.config.vocab_size
    batch = torch.randint(0, vocab, (settings.batch_size, settings.max_seq_len))
    times: dict[str, list[float]] = {name: [] for name in models}
    for step in range(STEPS + 1):
        for name, (model, optimizer) in models.items():
            started = time.perf_counter()
            model(input_ids=batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step:  # the first step warms up allocators and kernels
                times[name].append(time.perf_counter() - started)
    return {"lora_s": statistics.median(times["lora"]), "full_s": statistics.median(times["full"]),
            "trainable": trainable, "total": total}


def _demo_finetune(model_dir: str, workdir: Path) -> dict:
    """The finetune location's assets up to the fine-tuned model, on the sample export, in a fresh home."""
    import dagster as dg

    from reference_arch.common.registry import ModelRegistry
    from reference_arch.testkit.environment import scoped_environment

    with scoped_environment({"REFERENCE_ARCH_HOME": str(workdir / "home")},
                            unset=("REFERENCE_ARCH_GITHUB_EXPORT", "GITHUB_TOKEN")):
        ModelRegistry().publish("code-lm", model_dir, {"kind": "bench"})
        from reference_arch.finetune.config import FineTuningResource
        from reference_arch.finetune.definitions import defs
        from reference_arch.finetune.defs.ingestion import MONTHLY

        keys = MONTHLY.get_partition_keys()
        resources = {**defs.resources, "fine_tuning": FineTuningResource(backend="local")}
        assets = list(defs.assets) + list(defs.asset_checks)
        monthly = [dg.AssetKey(["finetune", "github_issues"]), dg.AssetKey(["finetune", "qa_pairs"])]
        rest = [dg.AssetKey(["finetune", n]) for n in ("train_validation_split", "prompts", "fine_tuned_model")]
        with dg.DagsterInstance.ephemeral() as instance:
            started = time.perf_counter()
            dg.materialize(assets, selection=monthly, instance=instance, resources=resources,
                           tags={"dagster/asset_partition_range_start": keys[0],
                                 "dagster/asset_partition_range_end": keys[-1]})
            ingested = time.perf_counter()
            result = dg.materialize(assets, selection=rest, instance=instance, resources=resources)
            finished = time.perf_counter()
        [tuned] = [e for e in result.get_asset_materialization_events()
                   if e.asset_key == dg.AssetKey(["finetune", "fine_tuned_model"])]
        meta = {k: v.value for k, v in tuned.materialization.metadata.items()}
        return {"ingest_s": ingested - started, "finetune_s": finished - ingested,
                "steps": meta.get("train/global_step"), "examples": meta.get("train_examples"),
                "train_runtime_s": meta.get("train/runtime_s")}


def run() -> dict:
    from reference_arch.finetune.config import FineTuningResource

    settings = FineTuningResource()
    workdir = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    try:
        model, model_dir = _base_model_dir(workdir)
        steps = _step_times(model_dir, settings)
        demo = _demo_finetune(model_dir, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    fraction = steps["trainable"] / steps["total"]
    tokens = settings.batch_size * settings.max_seq_len
    return {
        "title": "Fine-tuning (LoRA)",
        "model": model,
        "rows": [
            {"metric": "LoRA step time (fwd+bwd+AdamW)", "value": round(steps["lora_s"], 3), "unit": "s",
             "target": f"batch {settings.batch_size} x {settings.max_seq_len} tokens"},
            {"metric": "LoRA tokens/s", "value": round(tokens / steps["lora_s"]), "unit": "tok/s"},
            {"metric": "full fine-tuning step time, same model and batch", "value": round(steps["full_s"], 3),
             "unit": "s"},
            {"metric": "LoRA / full step time", "value": round(steps["lora_s"] / steps["full_s"], 2), "unit": "x"},
            {"metric": "trainable parameters", "value": steps["trainable"], "unit": f"of {steps['total']}"},
            {"metric": "trainable fraction", "value": round(fraction, 4), "unit": "",
             "target": f"<= {FRACTION_TARGET}", "ok": fraction <= FRACTION_TARGET},
            {"metric": "demo ingestion (sample export, all months, one run)", "value": round(demo["ingest_s"], 1),
             "unit": "s"},
            {"metric": f"demo fine-tuning (split, prompts, LoRA of {demo['examples']} examples x {demo['steps']} "
                       "steps, evaluation)",
             "value": round(demo["finetune_s"], 1), "unit": "s", "target": f"<= {DEMO_TARGET_S:.0f}",
             "ok": demo["finetune_s"] <= DEMO_TARGET_S},
            {"metric": "  of which the trainer's training loop", "value": round(demo["train_runtime_s"] or 0, 1),
             "unit": "s"},
        ],
    }
