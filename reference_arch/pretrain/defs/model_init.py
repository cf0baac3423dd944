"""Pretrain step 3, model init: random weights, or an existing checkpoint with layers added or removed."""

from typing import Optional

import dagster as dg
from pydantic import Field

from reference_arch.common.locations import asset_defaults
from reference_arch.pretrain import store
from reference_arch.pretrain.defs.processing import tokenizer, training_dataset


class ModelInitConfig(dg.Config):
    preset: str = Field("tiny", description="tiny | small | medium")
    arch: str = Field("gpt2", description="gpt2 | llama")
    context_length: Optional[int] = Field(None, description="Positions; default the dataset's block size")
    init_from: Optional[str] = Field(None, description="Start from this model (registry:NAME@latest or a path) "
                                     "instead of random weights")
    n_layer: Optional[int] = Field(None, description="Layers: more than the source duplicates blocks, fewer "
                                   "drops evenly spaced ones; with a preset, overrides its depth")
    seed: int = 0


@dg.asset(**asset_defaults("pretrain"), kinds={"pytorch", "huggingface"}, deps=[tokenizer, training_dataset], description=(
    "The model before training: a preset (tiny/small/medium, GPT-2 or Llama style) initialised at random, "
    "or an existing checkpoint (registry model or HF path) with layers added (blocks duplicated) or removed."))
def initial_model(context: dg.AssetExecutionContext, config: ModelInitConfig) -> dg.MaterializeResult:
    from reference_arch.common.trainer.causal_lm import load_tokenizer
    from reference_arch.common.trainer.model_init import ModelInitError, build_model, count_parameters, derive_model, \
        load_source, resolve_source, same_vocabulary

    tok_manifest = store.read_manifest("tokenizer")
    data = store.read_manifest("training_dataset")
    tok = load_tokenizer(tok_manifest["path"])
    context_length = config.context_length or data["block_size"]
    if context_length < data["block_size"]:
        raise dg.Failure(f"context_length {context_length} is shorter than the dataset's blocks "
                         f"({data['block_size']} tokens)")
    source = None
    try:
        if config.init_from:
            source, _ = resolve_source(config.init_from)  # registry:NAME@latest -> the version it is now
            source_model, source_tok = load_source(source)  # loaded once, checked, then resized
            if not same_vocabulary(tok, source_tok):
                raise dg.Failure(f"{config.init_from} uses another tokenizer than pretrain/tokenizer: set the "
                                 f"tokenizer's from_model to {config.init_from!r} and re-materialize the data")
            model, how = derive_model(source_model, source, context_length=context_length, n_layer=config.n_layer)
        else:
            model, how = build_model(preset=config.preset, arch=config.arch, context_length=context_length,
                                     tokenizer=tok, n_layer=config.n_layer, seed=config.seed)
    except ModelInitError as err:
        raise dg.Failure(str(err)) from None
    from reference_arch.common.atomic import staging_dir

    target = store.path("model") / "initial"
    with staging_dir(target) as staging:
        model.save_pretrained(staging)
        tok.save_pretrained(staging)
    params = count_parameters(model)
    manifest = store.write_manifest("initial_model", {
        "path": str(target), "how": how, "params": params, "layers": model.config.num_hidden_layers,
        "context_length": context_length, "config": model.config.to_dict(),
        "fingerprint": store.fingerprint(config.model_dump(), source, tok_manifest["fingerprint"], context_length)})
    return dg.MaterializeResult(metadata={
        "how": how, "parameters": params, "layers": model.config.num_hidden_layers,
        "d_model": model.config.hidden_size, "context_length": context_length,
        "architecture": model.config.model_type, "path": dg.MetadataValue.path(str(target)),
        "fingerprint": manifest["fingerprint"][:16]})
