"""Model init: random presets in both styles, and growing or shrinking an existing checkpoint."""

from __future__ import annotations

import pytest
import torch

from reference_arch.common.trainer.model_init import ModelInitError, build_model, layer_map, resize_layers


def test_layer_map_duplicates_up_and_keeps_ends_down():
    assert layer_map(2, 4) == [0, 0, 1, 1]
    assert layer_map(4, 6) == [0, 1, 1, 2, 2, 3]
    assert layer_map(6, 3) == [0, 2, 5] or layer_map(6, 3) == [0, 3, 5]
    assert layer_map(4, 4) == [0, 1, 2, 3]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_random_presets(arch):
    model, how = build_model(preset="tiny", arch=arch, context_length=64, vocab_size=300, seed=1)
    again, _ = build_model(preset="tiny", arch=arch, context_length=64, vocab_size=300, seed=1)
    assert model.config.num_hidden_layers == 4 and model.config.vocab_size == 300
    assert "random tiny" in how
    first = next(iter(model.state_dict().values()))
    assert torch.equal(first, next(iter(again.state_dict().values())))  # the seed decides the weights
    out = model(input_ids=torch.randint(0, 300, (2, 64)), labels=torch.randint(0, 300, (2, 64)))
    assert torch.isfinite(out.loss)
    with pytest.raises(ModelInitError, match="unknown preset"):
        build_model(preset="huge", vocab_size=300)


def _block(model, i):
    return model.transformer.h[i] if hasattr(model, "transformer") else model.model.layers[i]


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_upscale_from_registry_duplicates_blocks(registry_with_tiny_model):
    source, _ = build_model(init_from="registry:tiny-lm@latest", context_length=64)
    grown, how = build_model(init_from="registry:tiny-lm@latest", n_layer=4, context_length=64)
    assert "upscaled" in how and grown.config.num_hidden_layers == 4
    for new, old in enumerate([0, 0, 1, 1]):
        assert _same(_block(grown, new), _block(source, old))
    assert torch.equal(grown.lm_head.weight, source.lm_head.weight)
    ids = torch.randint(0, 300, (1, 16))
    assert grown(input_ids=ids).logits.shape == source(input_ids=ids).logits.shape


def test_downscale_from_a_path_keeps_first_and_last(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    source = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    deeper = resize_layers(source, 3)  # 2 -> 3 layers, then down again from that path's model
    shrunk = resize_layers(deeper, 2)
    assert shrunk.config.num_hidden_layers == 2
    assert _same(_block(shrunk, 0), _block(deeper, 0)) and _same(_block(shrunk, 1), _block(deeper, 2))
    small, how = build_model(init_from=str(tiny_model_dir), n_layer=1, context_length=64)
    assert "downscaled" in how and small.config.num_hidden_layers == 1


def test_llama_resize():
    model, _ = build_model(preset="tiny", arch="llama", context_length=32, vocab_size=200)
    grown = resize_layers(model, 6)
    assert grown.config.num_hidden_layers == 6
    assert _same(_block(grown, 1), _block(model, 1))  # layer_map(4, 6)[1] == 1
    assert [layer.self_attn.layer_idx for layer in grown.model.layers] == list(range(6))


def test_bad_sources_fail_clearly(tmp_home, tmp_path):
    with pytest.raises(ModelInitError, match="registry"):
        build_model(init_from="registry:nothing@latest")
    with pytest.raises(ModelInitError, match="not a registry spec"):
        build_model(init_from=str(tmp_path / "missing"))
    with pytest.raises(ModelInitError, match="context"):
        build_model(init_from="registry:nothing@latest") if False else None
        from reference_arch.testkit.tiny_model import build_tiny_model

        build_model(init_from=str(build_tiny_model(tmp_path / "m", n_positions=16)), context_length=64)
