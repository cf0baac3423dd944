"""Model initialisation: size presets built at random, or grown/shrunk from an existing checkpoint.

Presets are decoder-only configs in GPT-2 or Llama style; the context length is a parameter.
Changing the depth of a trained model copies its blocks into a model of the new depth: new block
``j`` is old block ``round(j * (old - 1) / (new - 1))``, so adding layers duplicates blocks in
place (depth up-scaling) and removing layers keeps evenly spaced blocks, first and last included.
Imported only inside assets and the training process (it loads torch and transformers).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# d_model, layers, heads. tiny: the CPU demo (~1.9M parameters with an 8k vocabulary);
# small: a laptop run (~14M); medium: the GPU run (~90M, GPT-2-small sized).
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"d_model": 128, "n_layer": 4, "n_head": 4},
    "small": {"d_model": 384, "n_layer": 6, "n_head": 6},
    "medium": {"d_model": 768, "n_layer": 12, "n_head": 12},
}
ARCHS = ("gpt2", "llama")

# A transformer block's parameters, in GPT-2 (`transformer.h.3.`) and Llama (`model.layers.3.`) naming.
_LAYER_KEY = re.compile(r"^(.*?\.(?:h|layers))\.(\d+)\.(.*)$")


class ModelInitError(ValueError):
    """A model cannot be initialised as requested."""


def preset_config(preset: str, arch: str, vocab_size: int, context_length: int, *,
                  bos_token_id: int | None = None, eos_token_id: int | None = None,
                  pad_token_id: int | None = None, n_layer: int | None = None):
    """A transformers config for ``preset`` in ``arch`` style."""
    from transformers import GPT2Config, LlamaConfig

    if preset not in PRESETS:
        raise ModelInitError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)}")
    if arch not in ARCHS:
        raise ModelInitError(f"unknown architecture {arch!r}: choose one of {list(ARCHS)}")
    p = PRESETS[preset]
    layers = n_layer or p["n_layer"]
    tokens = dict(bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    if arch == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_positions=context_length, n_embd=p["d_model"], n_layer=layers,
                          n_head=p["n_head"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **tokens)
    # SwiGLU width 8/3 d rounded up to a multiple of 64 (matmul-friendly), tied embeddings like GPT-2.
    hidden = -(-8 * p["d_model"] // 3 // 64) * 64
    return LlamaConfig(vocab_size=vocab_size, max_position_embeddings=context_length, hidden_size=p["d_model"],
                       intermediate_size=hidden, num_hidden_layers=layers, num_attention_heads=p["n_head"],
                       num_key_value_heads=p["n_head"], tie_word_embeddings=True, **tokens)


def random_model(config, seed: int = 0):
    """A randomly initialised causal LM for ``config`` (deterministic for a seed)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")


def layer_map(old: int, new: int) -> list[int]:
    """For each of ``new`` blocks, the index of the old block it is copied from."""
    if old < 1 or new < 1:
        raise ModelInitError(f"layer counts must be positive (got {old} -> {new})")
    if new == 1:
        return [0]
    return [round(j * (old - 1) / (new - 1)) for j in range(new)]


def resize_layers(model, n_layer: int):
    """A copy of ``model`` with ``n_layer`` blocks, each copied from a block of ``model``."""
    import copy

    from transformers import AutoModelForCausalLM

    old = model.config.num_hidden_layers
    if n_layer == old:
        return model
    mapping = layer_map(old, n_layer)
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = n_layer
    if getattr(config, "layer_types", None):  # per-layer attention kinds follow their block
        config.layer_types = [config.layer_types[i] for i in mapping]
    grown = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    source = model.state_dict()
    state: dict[str, Any] = {}
    for key in grown.state_dict():
        match = _LAYER_KEY.match(key)
        src = f"{match[1]}.{mapping[int(match[2])]}.{match[3]}" if match else key
        state[key] = source[src].clone()
    grown.load_state_dict(state)
    return grown


def resolve_source(spec: str) -> tuple[str, str | Path]:
    """(the exact spec, its directory) of a registry spec (``registry:NAME@latest`` becomes
    ``registry:NAME@3``) or a local HF path."""
    from reference_arch.common.registry import PREFIX, ModelNotFoundError, ModelRegistry

    if spec.startswith(PREFIX):
        try:
            found = ModelRegistry().resolve(spec)
        except ModelNotFoundError as err:
            raise ModelInitError(f"cannot initialise from {spec!r}: {err}") from None
        return found.spec, found.path
    if not Path(spec).is_dir():
        raise ModelInitError(f"cannot initialise from {spec!r}: not a registry spec nor a saved model directory")
    return spec, spec


def load_source(spec: str):
    """Model and tokenizer from a registry spec (``registry:NAME@latest``) or a local HF path."""
    from reference_arch.common.trainer.causal_lm import load_model, load_tokenizer

    _, path = resolve_source(spec)
    try:
        model = load_model(str(path), attn_implementation="sdpa")
        tokenizer = load_tokenizer(str(path))
    except OSError as err:
        raise ModelInitError(f"cannot load the model at {spec!r}: {err}") from None
    return model, tokenizer


def derive_model(model, name: str, *, context_length: int, n_layer: int | None = None):
    """(model, description): ``model`` (loaded from ``name``) with its depth set to ``n_layer``."""
    old = model.config.num_hidden_layers
    if n_layer and n_layer != old:
        model = resize_layers(model, n_layer)
        how = f"{'upscaled' if n_layer > old else 'downscaled'} from {name} ({old} -> {n_layer} layers)"
    else:
        how = f"copied from {name} ({old} layers)"
    positions = getattr(model.config, "n_positions", None) or model.config.max_position_embeddings
    if context_length > positions:
        raise ModelInitError(f"{name} has a context of {positions} tokens, shorter than {context_length}")
    return model, how


def build_model(*, preset: str = "tiny", arch: str = "gpt2", context_length: int = 256, tokenizer=None,
                vocab_size: int | None = None, init_from: str | None = None, n_layer: int | None = None,
                seed: int = 0):
    """(model, description): a preset at random, or ``init_from`` with its depth set to ``n_layer``."""
    if init_from:
        model, _ = load_source(init_from)
        return derive_model(model, init_from, context_length=context_length, n_layer=n_layer)
    if tokenizer is None and vocab_size is None:
        raise ModelInitError("a random model needs a tokenizer or a vocabulary size")
    ids = {}
    if tokenizer is not None:
        vocab_size = len(tokenizer)
        ids = dict(bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id,
                   eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = preset_config(preset, arch, vocab_size, context_length, n_layer=n_layer, **ids)
    model = random_model(config, seed)
    return model, f"random {preset} {arch} ({config.num_hidden_layers} layers, seed {seed})"


def count_parameters(model, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def same_vocabulary(a, b) -> bool:
    """Whether two tokenizers map every token to the same id."""
    return a.get_vocab() == b.get_vocab()
