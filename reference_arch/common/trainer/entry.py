"""The training entry point shared by the pretrain and finetune locations.

``TrainerResource`` runs ``python -m reference_arch.common.trainer.entry`` in its own process through
Dagster Pipes. The Pipes extras are a ``TrainSpec`` (``spec.py``) as JSON, built and validated by the
asset: the base model (a saved Hugging Face model directory, or an ``init`` spec for
``model_init.build_model``), the datasets of fixed-length blocks (``data.py``), the output directory,
the schedule and an optional LoRA adapter (peft).

``train`` reads top to bottom: device and seed, model, data, where to start, the loop (Hugging Face's
``Trainer`` with the callbacks in ``loop.py`` that stream loss, learning rate, tokens/s and MFU back
as Pipes logs and custom messages and announce each checkpoint), the results. A re-run resumes from
the newest *complete* checkpoint (``checkpoints.py``): the seedable sampler draws each epoch's order
from (seed, epoch) and the Trainer skips the batches already consumed, so a resumed run sees the
same batches an uninterrupted run would have (nanoGPT re-seeds its sampler on resume and repeats
data). ``output_dir/final`` holds the trained model and its tokenizer (merged with LoRA;
``output_dir/adapter`` holds the adapter).

Other launchers, with no change to this module:
- ``torchrun``: ``TrainerResource(launcher="torchrun", nproc_per_node=8)`` runs
  ``torchrun --standalone --nproc_per_node=8 -m reference_arch.common.trainer.entry``. Every rank
  reads the extras from the Pipes context; rank 0 alone reports; the Trainer picks up DDP from
  torchrun's environment variables.
- a remote Pipes client (``PipesK8sClient``, Databricks, ...): start this module in the remote
  image with the client's bootstrap environment; paths in the extras must point at storage the
  remote side sees, and the client's message reader must match the writer opened here (the
  default writes to the file the bootstrap names).
- no Dagster: ``python -m reference_arch.common.trainer.entry --config spec.json`` prints the reports.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

from reference_arch.common.trainer.spec import TrainSpec, parse_spec


class Reporter:
    """Pipes logs and custom messages on rank 0; silence elsewhere; stdout without Dagster."""

    def __init__(self, pipes=None, enabled: bool = True, echo: bool = False):
        self.pipes, self.enabled, self.echo = pipes, enabled, echo

    def log(self, text: str) -> None:
        if not self.enabled:
            return
        if self.pipes is not None:
            self.pipes.log.info(text)
        if self.echo:
            print(text, flush=True)

    def message(self, payload: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self.pipes is not None:
            self.pipes.report_custom_message(payload)
        if self.echo:
            print(json.dumps(payload), flush=True)


def train(spec: TrainSpec, report: Reporter) -> dict[str, Any]:
    """One training run; returns (and on rank 0 reports) the "done" summary."""
    from transformers import set_seed

    from reference_arch.common.trainer import loop
    from reference_arch.common.trainer.causal_lm import load_tokenizer
    from reference_arch.common.trainer.checkpoints import checkpoint_step, claim, starting_point
    from reference_arch.common.trainer.data import is_rank_zero
    from reference_arch.common.trainer.device import pick_device, use_bf16
    from reference_arch.common.trainer.models import apply_lora, base_model, parameter_counts
    from reference_arch.common.trainer.throughput import device_peak_flops, flop_parameters

    output_dir = Path(spec.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(spec.device)
    bf16 = use_bf16(spec.precision, device)
    set_seed(spec.seed)

    tokenizer = load_tokenizer(spec.tokenizer_dir or spec.model_dir)
    model = base_model(spec, tokenizer)
    flop_params = flop_parameters(model)  # counted before LoRA: the adapters' own matmuls are negligible
    if spec.lora:
        model = apply_lora(model, spec.lora)

    train_data, eval_data, shape = training_data(spec, model)
    peak = spec.peak_flops or device_peak_flops(device, bf16)

    if is_rank_zero():
        claim(output_dir)  # one trainer per output directory
    resume_from, skipped = starting_point(output_dir, spec.resume, report.log)
    resumed_step = checkpoint_step(resume_from) if resume_from else 0

    streamer = loop.Streamer(report, output_dir, spec.max_steps, shape.tokens_per_step, flop_params, peak)
    batch_log = loop.BatchLog(output_dir) if spec.log_batches else None
    trainer = objective_trainer(spec, model, tokenizer, device, bf16, train_data, eval_data, streamer, batch_log)
    total, trainable = parameter_counts(model)
    report.message({"event": "start", "pid": os.getpid(), "device": device, "bf16": bf16, "world_size": shape.world,
                    "resumed_from_step": resumed_step, "total_params": total, "trainable_params": trainable,
                    "skipped_checkpoints": [{"path": str(p), "reason": why} for p, why in skipped],
                    "peak_flops": peak, "tokens_per_step": shape.tokens_per_step})
    report.log(f"training on {device}{' (bf16)' if bf16 else ''}: {total:,} parameters ({trainable:,} trainable), "
               f"{len(train_data):,} blocks of {shape.block} tokens, "
               + (f"resuming from {resume_from.name} (step {resumed_step}/{spec.max_steps})" if resume_from
                  else "from the start"))

    started = time.perf_counter()
    output = loop.fit(trainer, resume_from, resumed_step, spec.max_steps)
    runtime = time.perf_counter() - started

    eval_loss = float(trainer.evaluate()["eval_loss"]) if eval_data is not None else None
    result = summary(trainer, streamer, output, resume_from, runtime, eval_loss)
    result.update(total_params=total, trainable_params=trainable, flop_params=flop_params, peak_flops=peak,
                  block_size=shape.block, tokens_per_step=shape.tokens_per_step)
    if trainer.is_world_process_zero():
        finish(trainer, tokenizer, spec, result, report)
    return result


def training_data(spec: TrainSpec, model):
    """``(train data, eval data or None, BatchShape)`` for the spec's objective: fixed-length blocks for
    ``causal_lm``; tokenized preference pairs for ``dpo``, where trl runs chosen and rejected as two rows of
    at most the longest pair each (that must fit the context) and a step reads both (padding counted)."""
    from reference_arch.common.trainer.data import BatchShape, load_blocks

    if spec.objective == "dpo":
        from reference_arch.common.trainer.preference import load_pairs, longest_pair

        pairs = load_pairs(spec.train_data)
        shape = BatchShape.of_length(longest_pair(pairs), len(pairs), model, spec.batch_size, spec.grad_accum)
        return pairs, None, dataclasses.replace(shape, tokens_per_step=2 * shape.tokens_per_step)
    train_data = load_blocks(spec.train_data)
    eval_data = load_blocks(spec.eval_data) if spec.eval_data else None
    return train_data, eval_data, BatchShape.of(train_data, model, spec.batch_size, spec.grad_accum)


def objective_trainer(spec: TrainSpec, model, tokenizer, device: str, bf16: bool, train_data, eval_data, streamer,
                      batch_log):
    """The Hugging Face trainer for the spec's objective: trl's DPO trainer on pairs, or the block trainer."""
    from reference_arch.common.trainer import loop

    if spec.objective == "dpo":
        from reference_arch.common.trainer.preference import pair_trainer

        return pair_trainer(model, spec, device, bf16, train_data, tokenizer,
                            [streamer] + ([batch_log] if batch_log is not None else []))
    args = loop.training_arguments(spec, device, bf16, evaluate=eval_data is not None)
    return loop.block_trainer(model, args, train_data, eval_data, streamer, batch_log)


def summary(trainer, streamer, output, resume_from: Optional[Path], runtime: float,
            eval_loss: Optional[float]) -> dict[str, Any]:
    """The "done" message's training figures: steps, tokens, losses, throughput, checkpoints."""
    from reference_arch.common.trainer.checkpoints import checkpoint_info, checkpoint_step, complete_checkpoints
    from reference_arch.common.trainer.throughput import mfu

    step = trainer.state.global_step
    resumed_step = checkpoint_step(resume_from) if resume_from else 0
    steps_this_run = step - resumed_step
    last_loss = streamer.latest.get("loss")
    if last_loss is None and resume_from is not None:  # nothing left to train: report where it stopped
        last_loss = checkpoint_info(resume_from).get("loss")
    tokens_per_s = streamer.tokens_per_s(step)
    return {
        "event": "done", "global_step": step, "resumed_from_step": resumed_step, "steps_this_run": steps_this_run,
        "tokens_seen": step * streamer.tokens_per_step,
        "train_loss": float(output.training_loss) if output is not None and steps_this_run else last_loss,
        "last_loss": last_loss, "eval_loss": eval_loss, "tokens_per_s": tokens_per_s, "runtime_s": runtime,
        "mfu": mfu(streamer.flop_params, tokens_per_s, streamer.peak_flops), "curve": streamer.curve,
        "checkpoints": [str(p) for p in complete_checkpoints(trainer.args.output_dir)],
    }


def finish(trainer, tokenizer, spec: TrainSpec, result: dict[str, Any], report: Reporter) -> None:
    """Save ``final/`` (and ``adapter/``), then report the result."""
    from reference_arch.common.trainer.models import save_final

    final, adapter = save_final(trainer.model, tokenizer, Path(spec.output_dir), spec.lora is not None)
    result.update(model_dir=str(final), adapter_dir=str(adapter) if adapter else None)
    report.message(result)
    report.log(f"done: step {result['global_step']}, {result['steps_this_run']} steps this run, "
               f"{result['tokens_per_s']:,.0f} tok/s, MFU {100 * result['mfu']:.1f}%")


def _run(extras: dict[str, Any], report: Reporter) -> dict[str, Any]:
    try:
        return train(parse_spec(extras), report)
    except Exception as err:  # the orchestrator shows this line in the failure's description
        report.message({"event": "error", "message": f"{type(err).__name__}: {err}"})
        raise


PARENT_PID_ENV = "REFERENCE_ARCH_TRAINER_PARENT_PID"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent(parent: Optional[int], poll_s: float = 1.0) -> None:
    """End this process when the process that launched training (``parent``) ends, so a killed
    Dagster step never leaves a trainer running with no run attached. On Linux the kernel sends
    SIGTERM on the direct parent's death (``PR_SET_PDEATHSIG``); a watcher thread covers the rest
    (other systems, and torchrun workers, whose direct parent is the launcher). A checkpoint cut
    short this way is never resumed from: its marker is written last."""
    import signal
    import threading

    if not parent or os.name != "posix":
        return
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    original_ppid = os.getppid()

    def watch() -> None:
        while True:
            reparented = original_ppid == parent and os.getppid() != parent
            if reparented or not _alive(parent):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(poll_s)

    if original_ppid == parent or _alive(parent):
        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
    else:  # gone before we got here
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> int:
    import reference_arch  # noqa: F401  (offline switches before transformers loads)

    from reference_arch.common.settings import value

    die_with_parent(value("trainer_parent_pid"))

    if argv[:1] == ["--config"]:
        _run(json.loads(Path(argv[1]).read_text()), Reporter(echo=True))
        return 0
    from dagster_pipes import PipesDefaultContextLoader, PipesEnvVarParamsLoader, open_dagster_pipes

    if int(os.environ.get("RANK", "0")) != 0:  # torchrun's other ranks: same extras, no reports
        with PipesDefaultContextLoader().load_context(PipesEnvVarParamsLoader().load_context_params()) as data:
            extras = data["extras"]
        _run(extras, Reporter(enabled=False))
        return 0
    with open_dagster_pipes() as pipes:
        _run(pipes.extras, Reporter(pipes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
