"""The model the trainer trains and what it leaves behind: the base model (saved, or built by
``model_init``), an optional LoRA adapter, and ``final/`` (plus ``adapter/``) when it is done."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from reference_arch.common.trainer.checkpoints import ADAPTER, FINAL
from reference_arch.common.trainer.spec import LoraSpec, TrainSpec


def base_model(spec: TrainSpec, tokenizer):
    """The model to train: ``spec.model_dir`` loaded, or ``spec.init`` built; KV cache off (in
    training it only costs memory and time) and the causal-LM loss named."""
    from reference_arch.common.trainer.causal_lm import load_model, use_causal_lm_loss

    if spec.model_dir:
        model = load_model(spec.model_dir, attn_implementation="sdpa")
    else:
        from reference_arch.common.trainer.model_init import build_model

        model, _ = build_model(tokenizer=tokenizer, **spec.init.model_dump())
    model.config.use_cache = False
    return use_causal_lm_loss(model)


def apply_lora(model, lora: LoraSpec):
    """``model`` wrapped in a peft LoRA adapter; only the adapter trains."""
    import warnings

    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    # GPT-2's projections are Conv1D, whose weight is (in, out): peft needs fan_in_fan_out for them
    # (and otherwise warns and sets it itself).
    conv1d = any(isinstance(m, Conv1D) for m in model.modules())
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, fan_in_fan_out=conv1d,
                        target_modules=lora.target_modules or "all-linear", task_type="CAUSAL_LM")
    with warnings.catch_warnings():
        # peft 0.21 (the newest) reads transformers 5's deprecated `is_gradient_checkpointing` alias, a
        # FutureWarning about peft's code, not ours: silenced for this one message, at this one call.
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return get_peft_model(model, config)


def parameter_counts(model) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def save_final(model, tokenizer, output_dir: Path, lora: bool) -> tuple[Path, Optional[Path]]:
    """Write ``final/`` (and ``adapter/``) through a temporary directory, replacing older ones;
    with LoRA, ``final/`` holds the merged model."""
    from reference_arch.common.atomic import staging_dir

    def replace(target: Path, write: Callable[[Path], None]) -> Path:
        with staging_dir(target) as staging:
            write(staging)
        return target

    adapter = None
    if lora:
        adapter = replace(output_dir / ADAPTER, model.save_pretrained)
        model = model.merge_and_unload()
    model.config.use_cache = True  # generation after training wants the KV cache

    def write_model(path: Path) -> None:
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)

    return replace(output_dir / FINAL, write_model), adapter
