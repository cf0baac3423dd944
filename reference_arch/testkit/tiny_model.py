"""A tiny real model: a randomly initialised GPT-2-style causal LM with the project's byte-level BPE
tokenizer trained here on a few lines of text: real Hugging Face code paths, no hub, built in a second."""

from __future__ import annotations

from pathlib import Path

TINY_MODEL_NAME = "tiny-lm"  # the name tests and benchmarks publish it under in a registry
TINY_LLM = f"registry:{TINY_MODEL_NAME}@1"  # the LLM resource's model once published there

TINY_TEXT = [
    "import pandas as pd\nseries = pd.Series([1, 2, 3], name='values')\n",
    "A Series is a one-dimensional labeled array. See https://pandas.pydata.org/docs/ for more.\n",
    "def add(a, b):\n    return a + b\n",
    "class Frame:\n    def __init__(self, rows):\n        self.rows = rows\n",
] * 20


def build_tiny_model(target: Path, n_layer: int = 2, n_positions: int = 8192) -> Path:
    """Save a random GPT-2-style model and its tokenizer (the project's byte-level BPE,
    ``pretrain.tokenization.train_tokenizer``, trained on a few lines) under ``target``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from reference_arch.pretrain.tokenization import train_tokenizer

    tokenizer = train_tokenizer(TINY_TEXT, vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=32, n_layer=n_layer, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
