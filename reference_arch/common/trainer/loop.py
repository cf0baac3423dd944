"""The training loop: Hugging Face's ``Trainer`` (measured within 10% of a bare PyTorch loop in
``bench/bench_pretrain.py``), its arguments, and the callbacks that report from it.

``Streamer`` sends loss, learning rate, tokens/s and MFU to the reporter at each log step, and
marks each checkpoint complete (``checkpoint.json``) and announces it once the Trainer has saved
it. ``BatchLog`` writes which blocks each step trained on (to audit the data order across a resume).

Imported only by the training process (``entry.train``): it loads transformers and torch at import.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Optional

from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from reference_arch.common.trainer.checkpoints import BATCH_LOG, write_marker
from reference_arch.common.trainer.data import collate_blocks
from reference_arch.common.trainer.spec import TrainSpec
from reference_arch.common.trainer.throughput import mfu


def training_arguments(spec: TrainSpec, device: str, bf16: bool, evaluate: bool, kind: type = TrainingArguments,
                       **extra: Any) -> TrainingArguments:
    """The Trainer's arguments for ``spec``: AdamW with beta2 0.95, warm-up then cosine decay to
    ``min_lr_ratio``, the seedable sampler (each epoch's order drawn from (seed, epoch)), logs to
    ``spec.report_to`` (Hugging Face's integrations; "none" by default). ``kind`` is a ``TrainingArguments``
    subclass (trl's ``DPOConfig``) taking ``extra`` too."""
    return kind(
        output_dir=spec.output_dir, max_steps=spec.max_steps, per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.batch_size, gradient_accumulation_steps=spec.grad_accum,
        learning_rate=spec.lr, weight_decay=spec.weight_decay, adam_beta2=0.95, max_grad_norm=spec.max_grad_norm,
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": spec.min_lr_ratio},
        warmup_steps=spec.warmup_steps, logging_steps=spec.log_every,
        save_strategy="steps" if spec.checkpoint_every else "no", save_steps=spec.checkpoint_every or 1,
        save_total_limit=spec.keep_checkpoints,
        eval_strategy="steps" if (spec.eval_every and evaluate) else "no",
        eval_steps=spec.eval_every or None, seed=spec.seed, data_seed=spec.seed, use_cpu=device == "cpu",
        bf16=bf16, torch_compile=spec.compile, report_to=spec.report_to, disable_tqdm=True, log_level="warning",
        dataloader_drop_last=True, remove_unused_columns=False, **extra,
    )


# The Trainer's step intervals (``<kind>_steps`` and ``<kind>_strategy`` in TrainingArguments), as a run says them.
INTERVALS = {"save": "checkpoint", "logging": "log", "eval": "evaluate"}


class Streamer(TrainerCallback):
    """Loss, learning rate, tokens/s and MFU to the reporter; each finished checkpoint marked and announced."""

    def __init__(self, report, output_dir: Path, max_steps: int, tokens_per_step: int, flop_params: int,
                 peak_flops: float) -> None:
        self.report, self.output_dir, self.max_steps = report, output_dir, max_steps
        self.tokens_per_step, self.flop_params, self.peak_flops = tokens_per_step, flop_params, peak_flops
        self.first_step: Optional[int] = None
        self.steady_t0: Optional[float] = None  # the clock after the first (warm-up, compile) step
        self.steady_step0 = 0
        self.last_t: Optional[float] = None
        self.last_step = 0
        self.latest: dict[str, Any] = {}
        self.curve: list[dict[str, Any]] = []

    def tokens_per_s(self, step: int) -> float:
        """Steady-state throughput from the second step of this run to ``step``."""
        if self.steady_t0 is None or step <= self.steady_step0:
            return 0.0
        return (step - self.steady_step0) * self.tokens_per_step / (time.perf_counter() - self.steady_t0)

    def on_train_begin(self, args, state, control, **kwargs):
        # A resumed TrainerState keeps the intervals of the run that saved it, and the Trainer's flow reads
        # them from the state, not from args: this run's settings take effect from here, said in one line.
        was = {kind: getattr(state, f"{kind}_steps") for kind in INTERVALS}
        state.compute_steps(args, state.max_steps)
        changed = [f"{name} every {getattr(state, f'{kind}_steps')} steps (was {was[kind]})"
                   for kind, name in INTERVALS.items()
                   if getattr(args, f"{kind}_strategy") == "steps" and getattr(state, f"{kind}_steps") != was[kind]]
        if state.global_step and changed:
            self.report.log(f"resumed at step {state.global_step} with this run's intervals: {', '.join(changed)}")

    def on_step_end(self, args, state, control, **kwargs):
        if self.first_step is None:
            self.first_step = state.global_step
        if state.global_step == self.first_step + 1:
            self.steady_t0, self.steady_step0 = time.perf_counter(), state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        now, step = time.perf_counter(), state.global_step
        window = 0.0  # tokens/s since the last report, or since the steady start for the first
        if self.last_t is not None and step > self.last_step:
            window = (step - self.last_step) * self.tokens_per_step / (now - self.last_t)
        self.last_t, self.last_step = now, step
        rate = window or self.tokens_per_s(step)
        self.latest = {"step": step, "loss": float(logs["loss"]), "lr": float(logs.get("learning_rate", 0.0)),
                       "grad_norm": float(logs.get("grad_norm", 0.0) or 0.0), "tokens_per_s": rate,
                       "mfu": mfu(self.flop_params, rate, self.peak_flops), "tokens_seen": step * self.tokens_per_step}
        self.curve.append(self.latest)
        self.report.message({"event": "metrics", **self.latest})
        self.report.log(f"step {step}/{self.max_steps} loss {self.latest['loss']:.4f} lr {self.latest['lr']:.2e} "
                        f"{rate:,.0f} tok/s MFU {100 * self.latest['mfu']:.1f}%")

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        path = self.output_dir / f"checkpoint-{state.global_step}"
        info = write_marker(path, {**self.latest, "step": state.global_step, "path": str(path),
                                   "tokens_seen": state.global_step * self.tokens_per_step, "saved_at": time.time()})
        self.report.message({"event": "checkpoint", **info})
        self.report.log(f"checkpoint {path.name} saved")


class BatchLog(TrainerCallback):
    """Appends ``{"pid", "step", "rows"}`` to ``batches.jsonl`` at each step: a short hash of every
    block the step trained on, in order (``BlockTrainer`` records them)."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / BATCH_LOG
        self.rows: list[str] = []

    def record(self, input_ids) -> None:
        self.rows += [hashlib.blake2b(row.cpu().numpy().tobytes(), digest_size=8).hexdigest() for row in input_ids]

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            with open(self.path, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "step": state.global_step, "rows": self.rows}) + "\n")
        self.rows = []


class RetiedOnResume:
    """A ``Trainer`` mixin: re-ties tied weights on resume without a warning."""

    def _issue_warnings_after_load(self, load_result):
        # Tied weights (lm_head = the embeddings) are not saved, so a resumed checkpoint "misses"
        # them; the Trainer checks only _keys_to_ignore_on_save and warns. Re-tie, quietly.
        model = self.accelerator.unwrap_model(self.model)
        tied = set(getattr(model, "all_tied_weights_keys", None) or {})
        if load_result.missing_keys and set(load_result.missing_keys) <= tied:
            model.tie_weights()
            load_result = type(load_result)([], load_result.unexpected_keys)
        super()._issue_warnings_after_load(load_result)


class BlockTrainer(RetiedOnResume, Trainer):
    """``Trainer`` that hands each micro-batch to a ``BatchLog`` (when there is one) and re-ties tied
    weights on resume without a warning."""

    def __init__(self, *args, batch_log: Optional[BatchLog] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batch_log = batch_log

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.batch_log is not None:
            self.batch_log.record(inputs["input_ids"])
        return super().training_step(model, inputs, num_items_in_batch)


def block_trainer(model, args: TrainingArguments, train_data, eval_data, streamer: Streamer,
                  batch_log: Optional[BatchLog]) -> BlockTrainer:
    """The trainer, reporting through ``streamer`` (and ``batch_log``) instead of printing."""
    callbacks = [streamer] + ([batch_log] if batch_log is not None else [])
    trainer = BlockTrainer(model=model, args=args, train_dataset=train_data, eval_dataset=eval_data,
                           data_collator=collate_blocks, callbacks=callbacks, batch_log=batch_log)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def fit(trainer: Trainer, resume_from: Optional[Path], resumed_step: int, max_steps: int):
    """Train to ``max_steps`` from ``resume_from`` (or the start); the Trainer's output, or None when
    the checkpoint is already at ``max_steps`` (loaded, not trained: the Trainer would run one more step)."""
    if resume_from is not None and resumed_step >= max_steps:
        trainer._load_from_checkpoint(str(resume_from))
        trainer.state.global_step = resumed_step
        return None
    return trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
