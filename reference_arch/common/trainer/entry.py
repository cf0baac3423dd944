"""The training entry point shared by the pretrain and finetune locations.

``TrainerResource`` runs ``python -m reference_arch.common.trainer.entry`` in its own process through
Dagster Pipes. Everything comes from the Pipes extras (see ``TrainSpec``): the base model (a saved
Hugging Face model directory, or an ``init`` spec for ``model_init.build_model``), Arrow datasets
(``datasets.save_to_disk`` directories) of fixed-length ``input_ids`` blocks with optional
``labels`` (-100 = no loss, so prompt tokens can be masked) and ``attention_mask`` columns, the
output directory, the schedule and an optional ``lora`` block (peft).

Training is Hugging Face's ``Trainer`` (measured within 10% of a bare PyTorch loop in
``bench/bench_pretrain.py``) plus a callback that streams loss, learning rate, tokens/s and MFU
back as Pipes logs and custom messages, and announces each checkpoint. A re-run resumes from the
newest *complete* checkpoint (marked by ``checkpoint.json``, written after the Trainer has saved
model, optimizer, scheduler, RNG states and step): the seedable sampler draws each epoch's order
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
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

CHECKPOINT_MARKER = "checkpoint.json"
FINAL = "final"
ADAPTER = "adapter"
BATCH_LOG = "batches.jsonl"


@dataclasses.dataclass
class TrainSpec:
    output_dir: str
    train_data: list[str]
    model_dir: Optional[str] = None
    init: Optional[dict[str, Any]] = None  # model_init.build_model keyword arguments
    tokenizer_dir: Optional[str] = None
    eval_data: Optional[list[str]] = None
    max_steps: int = 100
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 10
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    checkpoint_every: int = 50
    keep_checkpoints: Optional[int] = None
    eval_every: int = 0
    log_every: int = 10
    seed: int = 0
    resume: bool = True
    lora: Optional[dict[str, Any]] = None  # {r, alpha, dropout, target_modules}
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU (where bf16 is 2-3x slower)
    compile: bool = False
    peak_flops: Optional[float] = None  # measured with a large matmul when unset
    log_batches: bool = False  # append each step's block hashes to batches.jsonl (audits data order)

    @classmethod
    def from_extras(cls, extras: dict[str, Any]) -> "TrainSpec":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(extras) - fields)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(fields)}")
        spec = cls(**extras)
        if isinstance(spec.train_data, str):
            spec.train_data = [spec.train_data]
        if isinstance(spec.eval_data, str):
            spec.eval_data = [spec.eval_data]
        if not spec.model_dir and not spec.init:
            raise ValueError("set model_dir (a saved model) or init (a model_init spec)")
        if spec.max_steps < 1 or spec.batch_size < 1 or spec.grad_accum < 1:
            raise ValueError("max_steps, batch_size and grad_accum must be at least 1")
        return spec


# -- checkpoints on disk (light: the orchestrator imports these) ---------------------------------
# What a resumable checkpoint holds, each part as the Trainer names its files (any one will do):
# weights (full model or LoRA adapter), optimizer and LR-scheduler state, RNG states, and the
# trainer state (global step, hence the data position the seedable sampler skips to).
CHECKPOINT_PARTS = {
    "model": ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.safetensors",
              "adapter_model.bin"),
    "optimizer": ("optimizer.pt", "optimizer.bin"),
    "scheduler": ("scheduler.pt",),
    "rng": ("rng_state.pth", "rng_state_0.pth"),
    "trainer_state": ("trainer_state.json",),
}


def checkpoint_step(path: str | Path) -> int:
    return int(Path(path).name.rsplit("-", 1)[1])


def checkpoint_problem(path: str | Path) -> Optional[str]:
    """Why the checkpoint at ``path`` cannot be resumed from, or None when it is complete.

    Complete means: the marker (``checkpoint.json``, written atomically after everything else)
    reads as JSON for this step; every part in ``CHECKPOINT_PARTS`` is there; every file the
    marker lists has the size it had when saved (a truncated file fails); the trainer state
    reads and is at this step.
    """
    path = Path(path)
    marker = path / CHECKPOINT_MARKER
    if not marker.exists():
        return f"no {CHECKPOINT_MARKER} (the save did not finish)"
    try:
        info = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"{CHECKPOINT_MARKER} is unreadable ({type(err).__name__}: {err})"
    if not isinstance(info, dict) or info.get("step") != checkpoint_step(path):
        return f"{CHECKPOINT_MARKER} does not describe step {checkpoint_step(path)}"
    missing = [part for part, names in CHECKPOINT_PARTS.items() if not any((path / n).is_file() for n in names)]
    if missing:
        return f"missing {', '.join(missing)} ({' / '.join(CHECKPOINT_PARTS[missing[0]])})"
    for name, size in (info.get("files") or {}).items():
        file = path / name
        if not file.is_file():
            return f"{name} is gone"
        if file.stat().st_size != size:
            return f"{name} is {file.stat().st_size} bytes, {size} when saved (truncated or overwritten)"
    try:
        state = json.loads((path / "trainer_state.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"trainer_state.json is unreadable ({type(err).__name__})"
    if state.get("global_step") != checkpoint_step(path):
        return f"trainer_state.json is at step {state.get('global_step')}, not {checkpoint_step(path)}"
    return None


def scan_checkpoints(output_dir: str | Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(complete checkpoints, oldest first; [(incomplete checkpoint, why)])."""
    root = Path(output_dir)
    if not root.is_dir():
        return [], []
    complete, skipped = [], []
    found = [p for p in root.glob("checkpoint-*") if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit()]
    for path in sorted(found, key=checkpoint_step):
        problem = checkpoint_problem(path)
        if problem is None:
            complete.append(path)
        else:
            skipped.append((path, problem))
    return complete, skipped


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """Checkpoint directories that can be resumed from (see ``checkpoint_problem``), oldest first."""
    return scan_checkpoints(output_dir)[0]


def latest_checkpoint(output_dir: str | Path) -> Optional[Path]:
    found = complete_checkpoints(output_dir)
    return found[-1] if found else None


def checkpoint_info(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / CHECKPOINT_MARKER).read_text())


def write_marker(path: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write the marker last, atomically, listing every file of the checkpoint with its size."""
    from reference_arch.common.atomic import write_json

    files = {str(f.relative_to(path)): f.stat().st_size for f in sorted(path.rglob("*"))
             if f.is_file() and f.name != CHECKPOINT_MARKER}
    write_json(path / CHECKPOINT_MARKER, {**info, "files": files})
    return info


# -- reporting ---------------------------------------------------------------------------------
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


def _device(spec: TrainSpec) -> str:
    import torch

    if spec.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return spec.device


def _load_blocks(paths: list[str]):
    import datasets

    parts = []
    for path in paths:
        try:
            parts.append(datasets.load_from_disk(path))
        except FileNotFoundError:
            raise ValueError(f"no dataset at {path} (expected a datasets.save_to_disk directory)") from None
    data = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    if "input_ids" not in data.column_names:
        raise ValueError(f"the dataset at {paths} has no input_ids column (columns: {data.column_names})")
    if len(data) == 0:
        raise ValueError(f"the dataset at {paths} is empty")
    columns = [c for c in ("input_ids", "labels", "attention_mask") if c in data.column_names]
    return data.with_format("torch", columns=columns)


def collate_blocks(rows: list[dict]) -> dict:
    """Stack fixed-length blocks; the labels are the inputs unless the dataset masks some."""
    import torch

    ids = torch.stack([r["input_ids"] for r in rows])
    batch = {"input_ids": ids, "labels": torch.stack([r["labels"] for r in rows]) if "labels" in rows[0] else ids}
    if "attention_mask" in rows[0]:
        batch["attention_mask"] = torch.stack([r["attention_mask"] for r in rows])
    return batch


def _build_model(spec: TrainSpec, tokenizer):
    from reference_arch.common.trainer.causal_lm import load_model, use_causal_lm_loss

    if spec.model_dir:
        return load_model(spec.model_dir, attn_implementation="sdpa")
    from reference_arch.common.trainer.model_init import build_model

    model, _ = build_model(tokenizer=tokenizer, **spec.init)
    return use_causal_lm_loss(model)


def _apply_lora(model, lora: dict[str, Any]):
    from peft import LoraConfig, get_peft_model

    known = {"r", "alpha", "dropout", "target_modules"}
    if set(lora) - known:
        raise ValueError(f"unknown lora settings {sorted(set(lora) - known)}; known: {sorted(known)}")
    from transformers.pytorch_utils import Conv1D

    # GPT-2's projections are Conv1D, whose weight is (in, out): peft needs fan_in_fan_out for them
    # (and otherwise warns and sets it itself).
    conv1d = any(isinstance(m, Conv1D) for m in model.modules())
    config = LoraConfig(r=int(lora.get("r", 8)), lora_alpha=int(lora.get("alpha", 16)),
                        lora_dropout=float(lora.get("dropout", 0.0)), fan_in_fan_out=conv1d,
                        target_modules=lora.get("target_modules") or "all-linear", task_type="CAUSAL_LM")
    import warnings

    with warnings.catch_warnings():
        # peft 0.21 (the newest) reads transformers 5's deprecated `is_gradient_checkpointing` alias, a
        # FutureWarning about peft's code, not ours: silenced for this one message, at this one call.
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return get_peft_model(model, config)


def _save_final(model, tokenizer, output_dir: Path, lora: bool) -> tuple[Path, Optional[Path]]:
    """Write ``final/`` (and ``adapter/``) through a temporary directory, replacing older ones."""
    from reference_arch.common.atomic import staging_dir

    def replace(target: Path, write: Callable[[Path], None]) -> Path:
        with staging_dir(target) as staging:
            write(staging)
        return target

    adapter = None
    if lora:
        adapter = replace(output_dir / ADAPTER, model.save_pretrained)
        model = model.merge_and_unload()
    model.config.use_cache = True  # generation after training wants the KV cache

    def write_model(path: Path) -> None:
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)

    return replace(output_dir / FINAL, write_model), adapter


def train(spec: TrainSpec, report: Reporter) -> dict[str, Any]:
    import hashlib

    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from reference_arch.common.trainer.causal_lm import use_causal_lm_loss
    from reference_arch.common.trainer.throughput import flop_parameters, measure_peak_flops, mfu

    output_dir = Path(spec.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = _device(spec)
    bf16 = spec.precision == "bf16" or (spec.precision == "auto" and device.startswith("cuda"))
    set_seed(spec.seed)

    from reference_arch.common.trainer.causal_lm import load_tokenizer

    tokenizer = load_tokenizer(spec.tokenizer_dir or spec.model_dir)
    model = _build_model(spec, tokenizer)
    model.config.use_cache = False  # no KV cache while training: it only costs memory and time
    use_causal_lm_loss(model)
    n_flop_params = flop_parameters(model)
    if spec.lora:
        model = _apply_lora(model, spec.lora)
    total_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    train_data = _load_blocks(spec.train_data)
    eval_data = _load_blocks(spec.eval_data) if spec.eval_data else None
    block = int(train_data[0]["input_ids"].shape[0])
    context = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", block)
    if block > context:
        raise ValueError(f"blocks of {block} tokens exceed the model's context of {context}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    tokens_per_step = spec.batch_size * spec.grad_accum * world * block
    if len(train_data) < spec.batch_size * world:
        raise ValueError(f"{len(train_data)} training blocks cannot fill one batch of {spec.batch_size * world}")
    peak = spec.peak_flops or measure_peak_flops(device, "bfloat16" if bf16 else "float32",
                                                 size=8192 if device.startswith("cuda") else 2048, seconds=0.3)

    if int(os.environ.get("RANK", "0")) == 0:  # one trainer per output directory, released when it dies
        from filelock import FileLock, Timeout

        lock = FileLock(str(output_dir / ".train.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise ValueError(f"another training process is writing to {output_dir}: wait for it to finish or "
                             "stop it") from None
    resume_from, skipped = None, []
    if spec.resume:
        complete, skipped = scan_checkpoints(output_dir)
        resume_from = complete[-1] if complete else None
    else:
        for stale in output_dir.glob("checkpoint-*"):
            shutil.rmtree(stale, ignore_errors=True)
    # An incomplete checkpoint cannot be resumed from, and left in place it would confuse the
    # Trainer's rotation or be half-overwritten when training reaches its step again.
    for partial, why in skipped:
        report.log(f"skipped {partial.name}: {why}; removed it")
        shutil.rmtree(partial, ignore_errors=True)
    resumed_step = checkpoint_step(resume_from) if resume_from else 0

    args = TrainingArguments(
        output_dir=str(output_dir), max_steps=spec.max_steps, per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.batch_size, gradient_accumulation_steps=spec.grad_accum,
        learning_rate=spec.lr, weight_decay=spec.weight_decay, adam_beta2=0.95, max_grad_norm=spec.max_grad_norm,
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": spec.min_lr_ratio},
        warmup_steps=spec.warmup_steps, logging_steps=spec.log_every,
        save_strategy="steps" if spec.checkpoint_every else "no", save_steps=spec.checkpoint_every or 1,
        save_total_limit=spec.keep_checkpoints,
        eval_strategy="steps" if (spec.eval_every and eval_data is not None) else "no",
        eval_steps=spec.eval_every or None, seed=spec.seed, data_seed=spec.seed, use_cpu=device == "cpu",
        bf16=bf16, torch_compile=spec.compile, report_to="none", disable_tqdm=True, log_level="warning",
        dataloader_drop_last=True, remove_unused_columns=False,
    )

    class Streamer(TrainerCallback):
        """Loss, learning rate, tokens/s and MFU to Dagster; each finished checkpoint announced."""

        def __init__(self) -> None:
            self.first_step: Optional[int] = None
            self.steady_t0: Optional[float] = None
            self.steady_step0 = 0
            self.last_t = self.last_step = None
            self.latest: dict[str, Any] = {}
            self.curve: list[dict[str, Any]] = []

        def tokens_per_s(self, step: int) -> float:
            if self.steady_t0 is None or step <= self.steady_step0:
                return 0.0
            return (step - self.steady_step0) * tokens_per_step / (time.perf_counter() - self.steady_t0)

        def on_step_end(self, args, state, control, **kwargs):
            step = state.global_step
            if self.first_step is None:
                self.first_step = step
            if step == self.first_step + 1:  # steady state: after the first (warm-up, compile) step
                self.steady_t0, self.steady_step0 = time.perf_counter(), step
            if spec.log_batches and state.is_world_process_zero:
                with open(output_dir / BATCH_LOG, "a") as f:
                    f.write(json.dumps({"pid": os.getpid(), "step": step, "rows": trainer.batch_hashes}) + "\n")
            trainer.batch_hashes = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            now, step = time.perf_counter(), state.global_step
            window = 0.0
            if self.last_t is not None and step > self.last_step:
                window = (step - self.last_step) * tokens_per_step / (now - self.last_t)
            self.last_t, self.last_step = now, step
            rate = window or self.tokens_per_s(step)
            self.latest = {"step": step, "loss": float(logs["loss"]), "lr": float(logs.get("learning_rate", 0.0)),
                           "grad_norm": float(logs.get("grad_norm", 0.0) or 0.0), "tokens_per_s": rate,
                           "mfu": mfu(n_flop_params, rate, peak), "tokens_seen": step * tokens_per_step}
            self.curve.append(self.latest)
            report.message({"event": "metrics", **self.latest})
            report.log(f"step {step}/{spec.max_steps} loss {self.latest['loss']:.4f} lr {self.latest['lr']:.2e} "
                       f"{rate:,.0f} tok/s MFU {100 * self.latest['mfu']:.1f}%")

        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            path = output_dir / f"checkpoint-{state.global_step}"
            info = write_marker(path, {**self.latest, "step": state.global_step, "path": str(path),
                                       "tokens_seen": state.global_step * tokens_per_step, "saved_at": time.time()})
            report.message({"event": "checkpoint", **info})
            report.log(f"checkpoint {path.name} saved")

    class BlockTrainer(Trainer):
        batch_hashes: list[str] = []

        def training_step(self, model, inputs, num_items_in_batch=None):
            if spec.log_batches:  # which blocks this step trains on, in order
                self.batch_hashes = self.batch_hashes + [
                    hashlib.blake2b(row.cpu().numpy().tobytes(), digest_size=8).hexdigest()
                    for row in inputs["input_ids"]]
            return super().training_step(model, inputs, num_items_in_batch)

        def _issue_warnings_after_load(self, load_result):
            # Tied weights (lm_head = the embeddings) are not saved, so a resumed checkpoint "misses"
            # them; the Trainer checks only _keys_to_ignore_on_save and warns. Re-tie, quietly.
            model = self.accelerator.unwrap_model(self.model)
            tied = set(getattr(model, "all_tied_weights_keys", None) or {})
            if load_result.missing_keys and set(load_result.missing_keys) <= tied:
                model.tie_weights()
                load_result = type(load_result)([], load_result.unexpected_keys)
            super()._issue_warnings_after_load(load_result)

    streamer = Streamer()
    trainer = BlockTrainer(model=model, args=args, train_dataset=train_data, eval_dataset=eval_data,
                           data_collator=collate_blocks, callbacks=[streamer])
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)

    report.message({"event": "start", "pid": os.getpid(), "device": device, "bf16": bf16, "world_size": world,
                    "resumed_from_step": resumed_step,
                    "skipped_checkpoints": [{"path": str(p), "reason": why} for p, why in skipped], "total_params": total_params, "trainable_params": trainable,
                    "peak_flops": peak, "tokens_per_step": tokens_per_step})
    report.log(f"training on {device}{' (bf16)' if bf16 else ''}: {total_params:,} parameters "
               f"({trainable:,} trainable), {len(train_data):,} blocks of {block} tokens, "
               + (f"resuming from {resume_from.name}" if resume_from else "from the start"))
    started = time.perf_counter()
    if resume_from is not None and resumed_step >= spec.max_steps:
        # Nothing left to train. The Trainer would run one more step past max_steps here.
        trainer._load_from_checkpoint(str(resume_from))
        trainer.state.global_step = resumed_step
        output = None
    else:
        output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    elapsed = time.perf_counter() - started

    eval_loss = None
    if eval_data is not None:
        eval_loss = float(trainer.evaluate()["eval_loss"])
    steps_this_run = trainer.state.global_step - resumed_step
    last_loss = streamer.latest.get("loss")
    if last_loss is None and resume_from is not None:  # nothing left to train: report where it stopped
        last_loss = checkpoint_info(resume_from).get("loss")
    result: dict[str, Any] = {
        "event": "done", "global_step": trainer.state.global_step, "resumed_from_step": resumed_step,
        "steps_this_run": steps_this_run, "tokens_seen": trainer.state.global_step * tokens_per_step,
        "train_loss": float(output.training_loss) if output is not None and steps_this_run else last_loss,
        "last_loss": last_loss, "eval_loss": eval_loss,
        "tokens_per_s": streamer.tokens_per_s(trainer.state.global_step), "runtime_s": elapsed,
        "total_params": total_params, "trainable_params": trainable, "flop_params": n_flop_params,
        "peak_flops": peak, "block_size": block, "tokens_per_step": tokens_per_step, "curve": streamer.curve,
        "checkpoints": [str(p) for p in complete_checkpoints(output_dir)],
    }
    result["mfu"] = mfu(n_flop_params, result["tokens_per_s"], peak)
    if trainer.is_world_process_zero():
        final, adapter = _save_final(trainer.model, tokenizer, output_dir, bool(spec.lora))
        result.update(model_dir=str(final), adapter_dir=str(adapter) if adapter else None)
        report.message(result)
        report.log(f"done: step {result['global_step']}, {result['steps_this_run']} steps this run, "
                   f"{result['tokens_per_s']:,.0f} tok/s, MFU {100 * result['mfu']:.1f}%")
    return result


def _run(extras: dict[str, Any], report: Reporter) -> dict[str, Any]:
    try:
        spec = TrainSpec.from_extras(dict(extras))
        return train(spec, report)
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

    die_with_parent(int(os.environ[PARENT_PID_ENV]) if os.environ.get(PARENT_PID_ENV) else None)

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
