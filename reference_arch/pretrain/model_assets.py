"""The model half of pretraining: init -> training (checkpoints as dynamic partitions) -> evaluation -> registry."""

import json
import shutil
from datetime import datetime, timezone
from typing import Optional

import dagster as dg
from pydantic import Field

from reference_arch.common.questions import markdown_code
from reference_arch.common.trainer import CheckpointRecorder, TrainerResource
from reference_arch.pretrain import store
from reference_arch.pretrain.data_assets import COMMON, tokenizer, training_dataset

CHECKPOINTS = dg.DynamicPartitionsDefinition(name="pretrain_checkpoints")
MODEL_NAME = "code-lm"


def _device(name: str = "auto") -> str:
    from reference_arch.common.local_lm import pick_device

    return pick_device(name)


# -- model init ------------------------------------------------------------------------------------
class ModelInitConfig(dg.Config):
    preset: str = Field("tiny", description="tiny | small | medium")
    arch: str = Field("gpt2", description="gpt2 | llama")
    context_length: Optional[int] = Field(None, description="Positions; default the dataset's block size")
    init_from: Optional[str] = Field(None, description="Start from this model (registry:NAME@latest or a path) "
                                     "instead of random weights")
    n_layer: Optional[int] = Field(None, description="Layers: more than the source duplicates blocks, fewer "
                                   "drops evenly spaced ones; with a preset, overrides its depth")
    seed: int = 0


@dg.asset(**COMMON, kinds={"pytorch", "huggingface"}, deps=[tokenizer, training_dataset], description=(
    "The model before training: a preset (tiny/small/medium, GPT-2 or Llama style) initialised at random, "
    "or an existing checkpoint (registry model or HF path) with layers added (blocks duplicated) or removed."))
def initial_model(context: dg.AssetExecutionContext, config: ModelInitConfig) -> dg.MaterializeResult:
    from reference_arch.common.causal_lm import load_tokenizer
    from reference_arch.common.model_init import ModelInitError, build_model, count_parameters, load_source, \
        same_vocabulary

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
            source_model, source_tok = load_source(config.init_from)
            if not same_vocabulary(tok, source_tok):
                raise dg.Failure(f"{config.init_from} uses another tokenizer than pretrain/tokenizer: set the "
                                 f"tokenizer's from_model to {config.init_from!r} and re-materialize the data")
            from reference_arch.common.registry import PREFIX, ModelRegistry

            source = ModelRegistry().resolve(config.init_from).spec if config.init_from.startswith(PREFIX) \
                else config.init_from
        model, how = build_model(preset=config.preset, arch=config.arch, context_length=context_length,
                                 tokenizer=tok, init_from=source, n_layer=config.n_layer, seed=config.seed)
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


# -- training --------------------------------------------------------------------------------------
class TrainConfig(dg.Config):
    """Defaults: the demo's budget, about two minutes on two idle CPU cores (~0.8M tokens, about
    1.3 passes over the 3 MB corpus). Small batches learn more per token at this scale; scale up here."""

    max_steps: int = 800
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 30
    weight_decay: float = 0.1
    checkpoint_every: int = 200
    log_every: int = 10
    seed: int = 0
    fresh: bool = Field(False, description="Start over instead of resuming from the latest checkpoint")


@dg.asset(**COMMON, kinds={"pytorch", "huggingface"}, deps=[initial_model, training_dataset],
          pool="gpu", description=(
              "The trained model: the initial model trained on the training dataset by the trainer resource in "
              "its own process (Dagster Pipes). Loss, learning rate, tokens/s and MFU stream into the logs; each "
              "checkpoint becomes a partition of pretrain/checkpoints; a killed run resumes from its latest "
              "checkpoint when re-materialized."))
def trained_model(context: dg.AssetExecutionContext, config: TrainConfig, trainer: TrainerResource) \
        -> dg.MaterializeResult:
    data = store.read_manifest("training_dataset")
    init = store.read_manifest("initial_model")
    schedule = config.model_dump(exclude={"fresh", "log_every", "checkpoint_every"})
    run_id = store.fingerprint(init["fingerprint"], data["fingerprint"], schedule)[:12]
    run_dir = store.path("runs") / run_id
    if config.fresh:  # its checkpoints go, and so do their partitions
        shutil.rmtree(run_dir, ignore_errors=True)
        for key in context.instance.get_dynamic_partitions(CHECKPOINTS.name):
            if key.startswith(f"{run_id}-"):
                context.instance.delete_dynamic_partition(CHECKPOINTS.name, key)
    recorder = CheckpointRecorder(context, checkpoints.key, CHECKPOINTS.name, run_id)
    recorder.record_saved(run_dir)  # checkpoints a killed run wrote but did not get to announce
    spec = {
        "model_dir": init["path"], "train_data": [data["train_path"]], "output_dir": str(run_dir),
        "max_steps": config.max_steps, "batch_size": config.batch_size, "grad_accum": config.grad_accum,
        "lr": config.lr, "min_lr_ratio": config.min_lr_ratio, "warmup_steps": config.warmup_steps,
        "weight_decay": config.weight_decay, "checkpoint_every": config.checkpoint_every,
        "log_every": config.log_every, "seed": config.seed, "log_batches": True,
    }
    result = trainer.run(context, spec, on_message=recorder)
    for skipped in result.started.get("skipped_checkpoints", []):
        context.log.warning(f"skipped the incomplete checkpoint {skipped['path']}: {skipped['reason']}")
    summary = result.summary
    manifest = store.write_manifest("trained_model", {
        "path": summary["model_dir"], "run_id": run_id, "run_dir": str(run_dir), "steps": summary["global_step"],
        "tokens_seen": summary["tokens_seen"], "train_loss": summary["train_loss"], "last_loss": summary["last_loss"],
        "tokens_per_s": summary["tokens_per_s"], "mfu": summary["mfu"], "params": summary["total_params"],
        "flop_params": summary["flop_params"],
        "resumed_from_step": summary["resumed_from_step"], "init": init["how"],
        "trained_at": datetime.now(timezone.utc).isoformat(), "config": config.model_dump(),
        "checkpoint_partitions": [recorder.partition_key(int(p.rsplit("-", 1)[1])) for p in summary["checkpoints"]]})
    return dg.MaterializeResult(metadata={
        **result.metadata(), "run_id": run_id, "path": dg.MetadataValue.path(manifest["path"])})


@dg.asset(**COMMON, kinds={"pytorch"}, deps=[trained_model], partitions_def=CHECKPOINTS, pool="gpu", description=(
    "Training checkpoints, one dynamic partition each (added by pretrain/trained_model as they are written, "
    "with the training metrics). Materializing a partition measures that checkpoint's validation loss."))
def checkpoints(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    from reference_arch.common.causal_lm import load_model
    from reference_arch.common.train_entry import checkpoint_info, checkpoint_problem
    from reference_arch.pretrain.evaluation import perplexity

    run_id, _, step = context.partition_key.rpartition("-step")
    path = store.path("runs") / run_id / f"checkpoint-{int(step)}"
    if not path.is_dir():
        raise dg.Failure(f"checkpoint {context.partition_key} is gone from {path}")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise dg.Failure(f"checkpoint {context.partition_key} at {path} is incomplete: {problem}")
    data = store.read_manifest("training_dataset")
    blocks = _validation_blocks(data, 32)
    model = load_model(str(path)).to(_device())
    loss, ppl = perplexity(model, blocks)
    info = checkpoint_info(path)
    return dg.MaterializeResult(metadata={
        "step": int(step), "validation_loss": loss, "validation_perplexity": ppl,
        "train_loss": float(info.get("loss", 0.0)), "tokens_seen": int(info.get("tokens_seen", 0)),
        "path": dg.MetadataValue.path(str(path))})


def _validation_blocks(data: dict, limit: int):
    import datasets

    validation = datasets.load_from_disk(data["validation_path"]).with_format("torch")
    return validation[: min(limit, len(validation))]["input_ids"]


# -- evaluation and publishing ----------------------------------------------------------------------
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


@dg.asset(**COMMON, kinds={"pytorch", "python"}, deps=[trained_model], pool="gpu", description=(
    "The trained model's held-out perplexity (validation blocks; the initial model's alongside) and the share "
    "of its sampled completions of validation-file function headers that parse as Python. A blocking check "
    "gates publishing."))
def evaluation(context: dg.AssetExecutionContext, config: EvaluationConfig) -> dg.MaterializeResult:
    from reference_arch.common.causal_lm import load_model, load_tokenizer
    from reference_arch.pretrain.corpus import read_parquet
    from reference_arch.pretrain.evaluation import function_prompts, perplexity, sample_completions

    trained = store.read_manifest("trained_model")
    data = store.read_manifest("training_dataset")
    blocks = _validation_blocks(data, config.max_blocks)
    initial = load_model(store.read_manifest("initial_model")["path"]).to(_device())
    _, initial_ppl = perplexity(initial, blocks)
    del initial
    model = load_model(trained["path"]).to(_device())
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
        "samples": dg.MetadataValue.table(
            records=[dg.TableRecord({"prompt": s["prompt"][:200], "completion": s["completion"][:300],
                                     "parses": s["parses"], "valid_prefix": s["valid_prefix"]}) for s in samples],
            schema=dg.TableSchema(columns=[dg.TableColumn("prompt", "string"), dg.TableColumn("completion", "string"),
                                           dg.TableColumn("parses", "bool"), dg.TableColumn("valid_prefix", "bool")])),
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


@dg.asset(**COMMON, kinds={"huggingface"}, deps=[evaluation], description=(
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
    model = ModelRegistry().publish(config.model_name, trained["path"], card)
    store.write_manifest("published_model", {"spec": model.spec, "path": str(model.path)})
    return dg.MaterializeResult(metadata={
        "model": model.spec, "version": model.version, "path": dg.MetadataValue.path(str(model.path)),
        "perplexity": result["perplexity"], "parse_rate": result["parse_rate"],
        "card": dg.MetadataValue.json(model.card)})
