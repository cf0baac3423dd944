"""The local backend: LoRA (peft) on a Hugging Face causal LM through the shared trainer.

The chat examples are rendered with the same chat template that ``LLMResource`` uses at inference
(``DEFAULT_CHAT_TEMPLATE`` for models that have none) and saved as fixed-length ``input_ids`` with
``labels`` that mask the prompt, so the model learns to answer, not to ask, and an
``attention_mask`` that masks the padding.
"""

from __future__ import annotations

from pathlib import Path


def load_chat_tokenizer(model_dir: str):
    """The model's tokenizer, with the project's chat template when the model has none."""
    from reference_arch.common.trainer.causal_lm import load_tokenizer
    from reference_arch.common.llm.local import DEFAULT_CHAT_TEMPLATE

    tokenizer = load_tokenizer(model_dir)
    if not tokenizer.chat_template:
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_dataset(tokenizer, examples: list[dict], max_seq_len: int, target: Path) -> dict:
    """Save the examples as a ``datasets`` dataset of fixed-length ``input_ids``, ``labels`` and ``attention_mask``.

    Sequences are padded to the longest example (not to ``max_seq_len``): on a CPU every padded
    position costs as much as a real one.
    """
    from datasets import Dataset

    from reference_arch.finetune.chat_format import encode_chat

    encoded = [encode_chat(tokenizer, e["messages"]) for e in examples]
    encoded = [(ids[:max_seq_len], labels[:max_seq_len]) for ids, labels in encoded]
    width = max(len(ids) for ids, _ in encoded)
    pad = tokenizer.pad_token_id
    rows = {
        "input_ids": [ids + [pad] * (width - len(ids)) for ids, _ in encoded],
        "labels": [labels + [-100] * (width - len(labels)) for _, labels in encoded],
        # Padding is masked out of attention too (and transformers warns about padded ids without a mask).
        "attention_mask": [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in encoded],
    }
    from reference_arch.common.atomic import staging_dir

    with staging_dir(target) as staging:
        Dataset.from_dict(rows).save_to_disk(str(staging))
    return {"examples": len(encoded), "seq_len": width,
            "answer_tokens": sum(sum(1 for t in labels if t != -100) for _, labels in encoded)}


def training_key(parts: list) -> str:
    """Same inputs and settings -> same working directory, so a re-run resumes its checkpoints."""
    import hashlib
    import json

    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def lora_spec(fine_tuning, base_path: str, workdir: Path, batch_size: int, n_train: int):
    """The trainer's ``TrainSpec``: ``epochs`` passes over the training examples in full batches, a
    tenth of them warm-up, three checkpoints (the newest kept), the LoRA settings of ``fine_tuning``."""
    import math

    from reference_arch.common.trainer.resource import train_spec
    from reference_arch.finetune.split import TRAIN

    max_steps = max(1, fine_tuning.epochs * (n_train // batch_size))
    return train_spec(
        model_dir=base_path, tokenizer_dir=str(workdir / "tokenizer"), output_dir=str(workdir / "output"),
        # No eval_data: the evaluation check measures base and fine-tuned models on the same validation set.
        train_data=[str(workdir / "data" / TRAIN)],
        max_steps=max_steps, batch_size=batch_size, lr=fine_tuning.learning_rate,
        warmup_steps=max(1, max_steps // 10), weight_decay=0.0, seed=fine_tuning.seed,
        checkpoint_every=max(1, math.ceil(max_steps / 3)), keep_checkpoints=1,
        log_every=max(1, max_steps // 10), lora=lora_settings(fine_tuning),
    )


def lora_settings(fine_tuning) -> dict:
    return {"r": fine_tuning.lora_r, "alpha": fine_tuning.lora_alpha, "dropout": fine_tuning.lora_dropout,
            "target_modules": fine_tuning.lora_target_modules}


def train_lora(context, fine_tuning, trainer) -> tuple[dict, dict]:
    """LoRA on the base model through the shared trainer; returns (what the record keeps, metadata)."""
    import shutil

    from reference_arch.common.atomic import staging_dir
    from reference_arch.finetune.config import finetune_dir, prompts_path
    from reference_arch.finetune.jsonl import read_jsonl
    from reference_arch.finetune.split import TRAIN, VALIDATION

    base_spec, base_path = fine_tuning.base_model_path()
    n_train = len(read_jsonl(prompts_path(TRAIN)))
    batch_size = min(fine_tuning.batch_size, n_train)  # the trainer drops incomplete batches
    settings = {"lora": lora_settings(fine_tuning), "epochs": fine_tuning.epochs, "batch_size": batch_size,
                "lr": fine_tuning.learning_rate, "max_seq_len": fine_tuning.max_seq_len, "seed": fine_tuning.seed}
    key = training_key([prompts_path(TRAIN).read_bytes(), prompts_path(VALIDATION).read_bytes(), base_spec,
                        base_path, settings])
    root = finetune_dir("lora")
    workdir = root / key
    spec = lora_spec(fine_tuning, base_path, workdir, batch_size, n_train)  # checked before any work

    tokenizer = load_chat_tokenizer(base_path)
    with staging_dir(workdir / "tokenizer") as staging:
        tokenizer.save_pretrained(str(staging))  # with the chat template, for the merged model
    data = {}
    for side in (TRAIN, VALIDATION):
        data[side] = build_dataset(tokenizer, read_jsonl(prompts_path(side)), fine_tuning.max_seq_len,
                                   workdir / "data" / side)
    context.log.info(f"LoRA on {base_spec}: {data[TRAIN]['examples']} examples of {data[TRAIN]['seq_len']} tokens, "
                     f"{spec.max_steps} steps of {batch_size}")
    run = trainer.run(context, spec)
    for stale in root.iterdir():  # trained: older working directories (done or abandoned) can go
        if stale.is_dir() and stale.name != key:
            shutil.rmtree(stale, ignore_errors=True)
    done = run.summary
    record = {
        "base_spec": base_spec, "base_path": base_path, "model": done["model_dir"],
        "adapter_path": done["adapter_dir"], "lora": settings["lora"],
        "trainable_params": done["trainable_params"], "total_params": done["total_params"],
        "trainable_fraction": done["trainable_params"] / done["total_params"],
        "steps": done["global_step"], "resumed_from_step": done["resumed_from_step"],
        "train_loss": done["train_loss"], "tokens_per_s": done["tokens_per_s"], "runtime_s": done["runtime_s"],
        "seq_len": data[TRAIN]["seq_len"], "answer_tokens": data[TRAIN]["answer_tokens"],
    }
    return record, run.metadata()
