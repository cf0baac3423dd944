"""Shared fixtures: a temporary project home, a temporary Dagster instance, and a tiny real model.

The tiny model is a randomly initialised GPT-2-style causal LM with a byte-level BPE tokenizer
trained here on a few lines of text: real Hugging Face code paths, no hub, built in a second.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import reference_arch  # noqa: F401  (sets the offline switches)

TINY_TEXT = [
    "import pandas as pd\nseries = pd.Series([1, 2, 3], name='values')\n",
    "A Series is a one-dimensional labeled array. See https://pandas.pydata.org/docs/ for more.\n",
    "def add(a, b):\n    return a + b\n",
    "class Frame:\n    def __init__(self, rows):\n        self.rows = rows\n",
] * 20


def build_tiny_model(target: Path, n_layer: int = 2, n_positions: int = 128) -> Path:
    """Save a random GPT-2-style model and its tokenizer under ``target``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TINY_TEXT, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                        bos_token="<|endoftext|>")
    import torch

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=32, n_layer=n_layer, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def tmp_home(tmp_path, monkeypatch) -> Path:
    """A fresh REFERENCE_ARCH_HOME and DAGSTER_HOME; no OpenAI key."""
    home = tmp_path / "home"
    monkeypatch.setenv("REFERENCE_ARCH_HOME", str(home))
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "WEAVIATE_URL", "GITHUB_TOKEN", "SLACK_BOT_TOKEN",
                 "REFERENCE_ARCH_LLM_MODEL", "REFERENCE_ARCH_REDACT", "REFERENCE_ARCH_REDACT_PHONE_REGIONS"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def registry_with_tiny_model(tmp_home, tiny_model_dir):
    """The temporary home's registry holding the tiny model as ``tiny-lm`` version 1."""
    from reference_arch.common.registry import ModelRegistry

    registry = ModelRegistry()
    registry.publish("tiny-lm", tiny_model_dir, {"kind": "test"})
    return registry


@pytest.fixture
def instance(tmp_home):
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def pytest_configure(config):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
