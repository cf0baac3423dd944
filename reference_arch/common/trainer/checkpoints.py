"""Checkpoints on disk: which are complete, the marker that says so, and where a run starts.

Light (no torch): the orchestrator imports it to register checkpoints and to measure them. A
checkpoint is complete when ``checkpoint.json``, written atomically after the Trainer has saved
everything else, lists every file with its size and they all still have it (``checkpoint_problem``).
A run resumes from the newest complete one; incomplete ones are removed first, since left in place
they would confuse the Trainer's rotation or be half-overwritten when training reaches their step.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

CHECKPOINT_MARKER = "checkpoint.json"
FINAL = "final"
ADAPTER = "adapter"
BATCH_LOG = "batches.jsonl"
LOCK = ".train.lock"

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


_claimed: list = []  # the locks this process holds, until it ends


def claim(output_dir: Path) -> None:
    """Hold ``output_dir`` until this process ends (one trainer per directory; a dead process's
    lock is gone with it), or ``ValueError`` naming the directory when another process holds it."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(output_dir / LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ValueError(f"another training process is writing to {output_dir}: wait for it to finish or "
                         "stop it") from None
    _claimed.append(lock)


def starting_point(output_dir: Path, resume: bool,
                   log: Callable[[str], None] = print) -> tuple[Optional[Path], list[tuple[Path, str]]]:
    """(the checkpoint to resume from or None, [(incomplete checkpoint, why)]). The incomplete ones
    are removed, each said in ``log``; every checkpoint is removed when not resuming."""
    if not resume:
        for stale in output_dir.glob("checkpoint-*"):
            shutil.rmtree(stale, ignore_errors=True)
        return None, []
    complete, skipped = scan_checkpoints(output_dir)
    for partial, why in skipped:
        log(f"skipped {partial.name}: {why}; removed it")
        shutil.rmtree(partial, ignore_errors=True)
    return (complete[-1] if complete else None), skipped
