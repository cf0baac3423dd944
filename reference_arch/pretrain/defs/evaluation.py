"""Pretrain step 5, evaluation: held-out perplexity and parse rate gate publishing to the model registry."""

import json
from datetime import datetime, timezone
from typing import Optional

import dagster as dg
from pydantic import Field

from reference_arch.common.locations import asset_defaults
from reference_arch.common.metadata import table
from reference_arch.common.pools import GPU_POOL
from reference_arch.common.questions import markdown_code
from reference_arch.common.trainer.device import pick_device
from reference_arch.pretrain import store
from reference_arch.pretrain.defs.training import trained_model, validation_blocks

MODEL_NAME = "code-lm"


class EvaluationConfig(dg.Config):
    """The gate always requires training to have lowered held-out perplexity below the initial
    model's. Its absolute bars default to what the demo's two-minute model clears (it writes
    Python-looking lines, rarely a whole valid function): raise them when you train for real."""

    max_blocks: int = Field(64, description="Validation blocks for perplexity")
    prompts: int = Field(24, description="Function headers from validation files to complete")
    max_new_tokens: int = 32
    temperature: float = 0.8
    seed: int = 0
    max_perplexity: float = Field(1000.0, description="The publishing gate: highest held-out perplexity allowed "
                                  "(an untrained model scores about the vocabulary size)")
    min_parse_rate: float = Field(0.0, description="The publishing gate: lowest share of completions that parse")


@dg.asset(**asset_defaults("pretrain"), kinds={"pytorch", "python"}, deps=[trained_model], pool=GPU_POOL, description=(
    "The trained model's held-out perplexity (validation blocks; the initial model's alongside) and the share "
    "of its sampled completions of validation-file function headers that parse as Python. A blocking check "
    "gates publishing."))
def evaluation(context: dg.AssetExecutionContext, config: EvaluationConfig) -> dg.MaterializeResult:
    from reference_arch.common.trainer.causal_lm import load_model, load_tokenizer
    from reference_arch.pretrain.corpus import read_parquet
    from reference_arch.pretrain.metrics import function_prompts, perplexity, sample_completions

    trained = store.read_manifest("trained_model")
    data = store.read_manifest("training_dataset")
    blocks = validation_blocks(data, config.max_blocks)
    initial = load_model(store.read_manifest("initial_model")["path"]).to(pick_device())
    _, initial_ppl = perplexity(initial, blocks)
    del initial
    model = load_model(trained["path"]).to(pick_device())
    tok = load_tokenizer(trained["path"])
    loss, ppl = perplexity(model, blocks)
    held_out = set(data["validation_paths"])
    texts = [f["text"] for f in read_parquet(store.path("corpus") / "clean.parquet") if f["path"] in held_out]
    prompts = function_prompts(texts, config.prompts, config.seed)
    samples = sample_completions(model, tok, prompts, max_new_tokens=config.max_new_tokens,
                                 temperature=config.temperature, seed=config.seed)
    n = max(len(samples), 1)
    parse_rate = sum(s["parses"] for s in samples) / n
    prefix_rate = sum(s["valid_prefix"] for s in samples) / n
    store.write_manifest("evaluation", {
        "model_path": trained["path"], "run_id": trained["run_id"], "validation_loss": loss, "perplexity": ppl,
        "initial_perplexity": initial_ppl,
        "parse_rate": parse_rate, "valid_prefix_rate": prefix_rate, "completions": len(samples),
        "max_perplexity": config.max_perplexity, "min_parse_rate": config.min_parse_rate,
        "evaluated_at": datetime.now(timezone.utc).isoformat()})
    shown = "\n\n".join(f"{markdown_code(s['snippet'], 'python')}\n(parses: {s['parses']})" for s in samples[:4])
    return dg.MaterializeResult(metadata={
        "validation_loss": loss, "perplexity": ppl, "initial_perplexity": initial_ppl, "parse_rate": parse_rate,
        "valid_prefix_rate": prefix_rate, "completions": len(samples), "examples": dg.MetadataValue.md(shown or "(no prompts found)"),
        "samples": table([{**s, "prompt": s["prompt"][:200], "completion": s["completion"][:300]} for s in samples],
                         ["prompt", "completion", ("parses", "bool"), ("valid_prefix", "bool")]),
    })


def evaluation_failures(result: dict) -> list[str]:
    """Why an evaluation does not clear its gate (empty when it does)."""
    failures = []
    if not result["perplexity"] < result.get("initial_perplexity", float("inf")):
        failures.append(f"held-out perplexity {result['perplexity']:.1f} is not below the initial model's "
                        f"{result['initial_perplexity']:.1f}: training did not help")
    if not result["perplexity"] <= result["max_perplexity"]:
        failures.append(f"held-out perplexity {result['perplexity']:.1f} is above {result['max_perplexity']}")
    if result["parse_rate"] < result["min_parse_rate"]:
        failures.append(f"only {result['parse_rate']:.0%} of completions parse (gate: {result['min_parse_rate']:.0%})")
    if not result["completions"]:
        failures.append("no completion was sampled (no function header in the validation files)")
    return failures


class PublishConfig(dg.Config):
    model_name: str = MODEL_NAME


@dg.asset(**asset_defaults("pretrain"), kinds={"huggingface"}, deps=[evaluation], description=(
    "The trained model published to the model registry (`registry:code-lm@latest`) in Hugging Face format "
    "with a JSON card: corpus hash, tokenizer, config, steps, tokens seen, metrics, timestamps. The local "
    "LLM of the other locations."))
def published_model(context: dg.AssetExecutionContext, config: PublishConfig) -> dg.MaterializeResult:
    from reference_arch.common.registry import ModelRegistry

    trained = store.read_manifest("trained_model")
    result = store.read_manifest("evaluation")
    if result["model_path"] != trained["path"] or result.get("run_id") != trained["run_id"]:
        raise dg.Failure("pretrain/evaluation is older than pretrain/trained_model: materialize evaluation first")
    failures = evaluation_failures(result)
    if failures:  # the blocking check stops this in the same run; this guards runs that skip it
        raise dg.Failure("not publishing: " + "; ".join(failures))
    data = store.read_manifest("training_dataset")
    tok = store.read_manifest("tokenizer")
    init = store.read_manifest("initial_model")
    card = {
        "kind": "pretrained", "source_asset": "pretrain/published_model", "corpus_hash": data["corpus_hash"],
        "tokenizer": {"vocab_size": tok["vocab_size"], "fingerprint": tok["fingerprint"], "how": tok["how"]},
        "config": json.loads(json.dumps(init["config"], default=str)), "init": init["how"],
        "steps": trained["steps"], "tokens_seen": trained["tokens_seen"], "parameters": trained["params"],
        "metrics": {k: result[k] for k in ("validation_loss", "perplexity", "parse_rate", "valid_prefix_rate")}
        | {"train_loss": trained["train_loss"], "tokens_per_s": trained["tokens_per_s"], "mfu": trained["mfu"]},
        "trained_at": trained["trained_at"], "evaluated_at": result["evaluated_at"], "run_id": trained["run_id"],
    }
    model = ModelRegistry().publish(config.model_name, trained["path"], card, unless_same="trained_at")
    store.write_manifest("published_model", {"spec": model.spec, "path": str(model.path)})
    return dg.MaterializeResult(metadata={
        "model": model.spec, "version": model.version, "path": dg.MetadataValue.path(str(model.path)),
        "perplexity": result["perplexity"], "parse_rate": result["parse_rate"],
        "card": dg.MetadataValue.json(model.card)})
