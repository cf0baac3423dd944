"""Fine-tuning: an OpenAI fine-tuning job, or LoRA on the local base model, chosen by configuration.

Both backends train from the same two JSONL files and write the same record
(``REFERENCE_ARCH_HOME/finetune/fine_tuned.json``) that the evaluation check and the publishing
asset read: which model was trained, from what, and how.
"""

import json
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from reference_arch.common.locations import asset_defaults
from reference_arch.common.pools import GPU_POOL, pool_for
from reference_arch.common.trainer.resource import TrainerResource
from reference_arch.finetune.config import FineTuningResource, fine_tuning_resource, finetune_dir
from reference_arch.finetune.openai_client import OpenAIClientResource
from reference_arch.finetune.defs.processing import check_prompt_files, prompts
from reference_arch.finetune.config import prompts_path
from reference_arch.finetune.split import TRAIN, VALIDATION

FINE_TUNED_KEY = dg.AssetKey(["finetune", "fine_tuned_model"])


def record_path() -> Path:
    return finetune_dir() / "fine_tuned.json"


def read_record() -> dict:
    if not record_path().exists():
        raise dg.Failure(f"no fine-tuned model yet ({record_path()} is missing): materialize finetune/fine_tuned_model")
    return json.loads(record_path().read_text())


def _write_record(record: dict) -> None:
    from reference_arch.common.atomic import write_json

    write_json(record_path(), record)


def train_openai(context: dg.AssetExecutionContext, fine_tuning: FineTuningResource,
                 openai: OpenAIClientResource) -> dict:
    from reference_arch.finetune.openai_backend import FineTuningJobFailed, JobSettings, fine_tune, job_metadata

    settings = JobSettings(model=fine_tuning.resolved_base_model(), suffix=fine_tuning.openai_suffix,
                           n_epochs=fine_tuning.openai_epochs, seed=fine_tuning.seed,
                           poll_interval_s=fine_tuning.poll_interval_s,
                           poll_max_interval_s=fine_tuning.poll_max_interval_s, timeout_s=fine_tuning.poll_timeout_s)
    with openai.get_client(context) as client:
        try:
            job = fine_tune(client, prompts_path(TRAIN), prompts_path(VALIDATION), settings,
                            finetune_dir() / "openai_jobs.json", context.log.info)
        except (FineTuningJobFailed, TimeoutError) as err:
            raise dg.Failure(str(err)) from None
    metadata = job_metadata(job)
    context.add_output_metadata(metadata)
    return {"model": job.fine_tuned_model, "job_id": job.id, "trained_tokens": metadata["openai/trained_tokens"]}


@dg.asset(
    **asset_defaults("finetune"),
    deps=[prompts],
    kinds={"pytorch", "huggingface", "openai"},
    # The gpu pool for LoRA; the openai pool for an OpenAI job, which can run for hours on OpenAI's machines.
    pool=pool_for(fine_tuning_resource().backend, GPU_POOL),
    description="The fine-tuned model: LoRA (peft) on the packaged instruct model through the shared trainer "
                "(offline), or an OpenAI fine-tuning job through dagster-openai when the backend is openai.",
)
def fine_tuned_model(context: dg.AssetExecutionContext, fine_tuning: FineTuningResource, trainer: TrainerResource,
                     openai: OpenAIClientResource) -> dg.MaterializeResult:
    # OpenAI's rules again, here: nothing is uploaded or trained from files that break them.
    reports = check_prompt_files(fine_tuning)
    broken = [f"{side}: {report.summary()}" for side, report in reports.items() if not report.ok]
    if broken:
        raise dg.Failure("the prompt files break OpenAI's fine-tuning format, nothing was uploaded or trained: "
                         + "; ".join(broken))
    backend = fine_tuning.resolved_backend()
    base = fine_tuning.resolved_base_model()
    if backend == "openai":
        trained, extra = train_openai(context, fine_tuning, openai), {}
    else:
        from reference_arch.finetune.local_backend import train_lora

        trained, extra = train_lora(context, fine_tuning, trainer)
        base = trained.pop("base_spec")
    record = {"backend": backend, "base_model": base, "run_id": context.run_id,
              "trained_at": datetime.now(timezone.utc).isoformat(),
              "train_examples": reports[TRAIN].examples, "validation_examples": reports[VALIDATION].examples,
              **trained}
    _write_record(record)
    # The trainer's own figures (steps, losses, tokens/s, the loss curve) come in `extra` as train/*.
    numbers = {k: trained[k] for k in ("trainable_fraction", "seq_len", "answer_tokens") if k in trained}
    return dg.MaterializeResult(metadata={
        "backend": backend,
        "base_model": base,
        "model": str(record["model"]),
        "train_examples": record["train_examples"],
        "validation_examples": record["validation_examples"],
        **numbers,
        **extra,
    })
