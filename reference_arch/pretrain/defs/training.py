"""Pretrain step 4, training: the trainer resource in its own process (Pipes), checkpoints as dynamic partitions."""

import shutil
from datetime import datetime, timezone

import dagster as dg
from pydantic import Field

from reference_arch.common.locations import asset_defaults
from reference_arch.common.pools import GPU_POOL
from reference_arch.common.trainer.device import pick_device
from reference_arch.common.trainer.resource import CheckpointRecorder, TrainerResource, train_spec
from reference_arch.common.trainer.spec import TrainSchedule, schedule_field
from reference_arch.pretrain import store
from reference_arch.pretrain.defs.model_init import initial_model
from reference_arch.pretrain.defs.processing import training_dataset

CHECKPOINTS = dg.DynamicPartitionsDefinition(name="pretrain_checkpoints")


class TrainConfig(TrainSchedule, dg.Config):
    """The trainer's schedule (``TrainSchedule``, the run-config part of ``TrainSpec``) with the demo's
    budget as defaults: about two minutes on two idle CPU cores (~0.8M tokens, about 1.3 passes over
    the 3 MB corpus). Small batches learn more per token at this scale; scale up here."""

    max_steps: int = schedule_field("max_steps", 800)
    batch_size: int = schedule_field("batch_size", 4)
    lr: float = schedule_field("lr", 3e-3)
    warmup_steps: int = schedule_field("warmup_steps", 30)
    checkpoint_every: int = schedule_field("checkpoint_every", 200)
    fresh: bool = Field(False, description="Start over instead of resuming from the latest checkpoint")


@dg.asset(**asset_defaults("pretrain"), kinds={"pytorch", "huggingface"}, deps=[initial_model, training_dataset],
          pool=GPU_POOL, description=(
              "The trained model: the initial model trained on the training dataset by the trainer resource in "
              "its own process (Dagster Pipes). Loss, learning rate, tokens/s and MFU stream into the logs; each "
              "checkpoint becomes a partition of pretrain/checkpoints; a killed run resumes from its latest "
              "checkpoint when re-materialized."))
def trained_model(context: dg.AssetExecutionContext, config: TrainConfig, trainer: TrainerResource) \
        -> dg.MaterializeResult:
    data = store.read_manifest("training_dataset")
    init = store.read_manifest("initial_model")
    run_id = store.fingerprint(init["fingerprint"], data["fingerprint"], config.weight_settings())[:12]
    run_dir = store.path("runs") / run_id
    spec = train_spec(**config.schedule(), model_dir=init["path"], train_data=[data["train_path"]],
                      output_dir=str(run_dir), log_batches=True)
    if config.fresh:  # its checkpoints go, and so do their partitions
        shutil.rmtree(run_dir, ignore_errors=True)
        for key in context.instance.get_dynamic_partitions(CHECKPOINTS.name):
            if key.startswith(f"{run_id}-"):
                context.instance.delete_dynamic_partition(CHECKPOINTS.name, key)
    recorder = CheckpointRecorder(context, checkpoints.key, CHECKPOINTS.name, run_id)
    recorder.record_saved(run_dir)  # checkpoints a killed run wrote but did not get to announce
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


@dg.asset(**asset_defaults("pretrain"), kinds={"pytorch"}, deps=[trained_model], partitions_def=CHECKPOINTS, pool=GPU_POOL, description=(
    "Training checkpoints, one dynamic partition each (added by pretrain/trained_model as they are written, "
    "with the training metrics). Materializing a partition measures that checkpoint's validation loss."))
def checkpoints(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    from reference_arch.common.trainer.causal_lm import load_model
    from reference_arch.common.trainer.checkpoints import checkpoint_info, checkpoint_problem
    from reference_arch.pretrain.metrics import perplexity

    run_id, _, step = context.partition_key.rpartition("-step")
    path = store.path("runs") / run_id / f"checkpoint-{int(step)}"
    if not path.is_dir():
        raise dg.Failure(f"checkpoint {context.partition_key} is gone from {path}")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise dg.Failure(f"checkpoint {context.partition_key} at {path} is incomplete: {problem}")
    data = store.read_manifest("training_dataset")
    blocks = validation_blocks(data, 32)
    model = load_model(str(path)).to(pick_device())
    loss, ppl = perplexity(model, blocks)
    info = checkpoint_info(path)
    return dg.MaterializeResult(metadata={
        "step": int(step), "validation_loss": loss, "validation_perplexity": ppl,
        "train_loss": float(info.get("loss", 0.0)), "tokens_seen": int(info.get("tokens_seen", 0)),
        "path": dg.MetadataValue.path(str(path))})


def validation_blocks(data: dict, limit: int):
    import datasets

    validation = datasets.load_from_disk(data["validation_path"]).with_format("torch")
    return validation[: min(limit, len(validation))]["input_ids"]
