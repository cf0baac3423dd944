"""The local backend: LoRA (peft) on a Hugging Face causal LM through the shared trainer.

The chat examples are rendered with the same chat template that ``LLMResource`` uses at inference
(``DEFAULT_CHAT_TEMPLATE`` for models that have none) and saved as fixed-length ``input_ids`` with
``labels`` that mask the prompt, so the model learns to answer, not to ask.
"""

from __future__ import annotations

from pathlib import Path


def load_chat_tokenizer(model_dir: str):
    """The model's tokenizer, with the project's chat template when the model has none."""
    from transformers import AutoTokenizer

    from reference_arch.common.local_lm import DEFAULT_CHAT_TEMPLATE

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.chat_template:
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_dataset(tokenizer, examples: list[dict], max_seq_len: int, target: Path) -> dict:
    """Save the examples as a ``datasets`` dataset of fixed-length ``input_ids`` and ``labels``.

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
    }
    Dataset.from_dict(rows).save_to_disk(str(target))
    return {"examples": len(encoded), "seq_len": width,
            "answer_tokens": sum(sum(1 for t in labels if t != -100) for _, labels in encoded)}
