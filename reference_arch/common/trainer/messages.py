"""The Pipes message reader the trainer's subprocess writes to: Dagster's temporary-file reader, reading whole
lines only.

Dagster's ``PipesFileMessageReader`` tails the file with ``readline`` and parses what it returns. A line the
trainer is still writing is returned in part (a write that crosses a page boundary becomes visible a page at
a time), its JSON fails to parse, the reader thread dies and the step fails though training went on: a demo
saw ``JSONDecodeError: Expecting ',' delimiter: line 1 column 237`` at step 240 of 800. Here a line is
parsed once its newline has arrived.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from contextlib import contextmanager

import dagster as dg
from dagster_pipes import PipesDefaultMessageWriter

from reference_arch.common.metadata import table
from reference_arch.common.trainer.plot import loss_plot_markdown

POLL_S = 0.01  # as Dagster's own tail


def whole_lines(path: str, should_stop: Callable[[], bool]) -> Iterator[str]:
    """The lines appended to ``path`` until ``should_stop()`` and no more data, each yielded once complete
    (ending in a newline). A last line without one, left by a writer killed mid-write, is dropped."""
    pending = ""
    with open(path, encoding="utf-8") as stream:
        while True:
            piece = stream.readline()
            if piece:
                pending += piece
                if pending.endswith("\n"):
                    yield pending
                    pending = ""
            elif should_stop():
                return
            else:
                time.sleep(POLL_S)


class WholeLineMessageReader(dg.PipesMessageReader):
    """``PipesTempFileMessageReader``'s protocol (a file path in the bootstrap parameters, one JSON message
    per line), reading whole lines only."""

    @contextmanager
    def read_messages(self, handler) -> Iterator[dict]:
        closed = threading.Event()
        with tempfile.TemporaryDirectory(prefix="pipes-") as folder:
            path = os.path.join(folder, "messages")
            open(path, "w", encoding="utf-8").close()

            def read() -> None:
                try:
                    for line in whole_lines(path, closed.is_set):
                        handler.handle_message(json.loads(line))
                except BaseException:
                    handler.report_pipes_framework_exception(f"{type(self).__name__} reader thread",
                                                             sys.exc_info())
                    raise

            thread = threading.Thread(target=read, name="pipes-messages", daemon=True)
            thread.start()
            try:
                yield {PipesDefaultMessageWriter.FILE_PATH_KEY: path,
                       PipesDefaultMessageWriter.INCLUDE_STDIO_IN_MESSAGES_KEY: False}
            finally:
                closed.set()
                thread.join()

    def no_messages_debug_text(self) -> str:
        return "Attempted to read messages from a local temporary file."


@dataclasses.dataclass
class TrainingRun:
    """What one run of the entry point reported."""

    summary: dict[str, Any]  # the entry point's final "done" message
    started: dict[str, Any]  # its "start" message: device, resumed_from_step, parameters
    curve: list[dict[str, Any]]  # one "metrics" message per log step
    checkpoints: list[dict[str, Any]]  # one "checkpoint" message per checkpoint saved in this run

    def metadata(self) -> dict[str, Any]:
        """Numeric metadata for the asset (the UI plots it across materializations), and this run's loss curve
        as a table (``train/loss_curve``) and a plot (``train/loss_plot``)."""
        s = self.summary
        numbers = {k: s.get(k) for k in ("global_step", "steps_this_run", "resumed_from_step", "tokens_seen",
                                         "train_loss", "last_loss", "eval_loss", "tokens_per_s", "mfu",
                                         "runtime_s", "total_params", "trainable_params")}
        meta: dict[str, Any] = {f"train/{k}": float(v) if isinstance(v, float) else v
                                for k, v in numbers.items() if v is not None}
        if self.curve:
            meta["train/loss_curve"] = table(
                [{"step": int(m["step"]), "loss": float(m["loss"]), "lr": float(m["lr"]),
                  "tokens_per_s": float(m["tokens_per_s"]), "mfu": float(m["mfu"])} for m in self.curve],
                [("step", "int"), ("loss", "float"), ("lr", "float"), ("tokens_per_s", "float"), ("mfu", "float")])
            plot = loss_plot_markdown(self.curve)
            if plot is not None:  # the same curve as a picture (a PNG in Markdown), shown in the UI
                meta["train/loss_plot"] = dg.MetadataValue.md(plot)
        meta["train/device"] = str(self.started.get("device", ""))
        return meta


def training_run(returncode: int, messages: Sequence[Any]) -> TrainingRun:
    """What a run of the entry point reported (its Pipes custom messages), or ``dg.Failure`` naming why it
    ended without its "done" message."""
    by_event: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        if isinstance(m, dict):
            by_event.setdefault(m.get("event", ""), []).append(m)
    if returncode != 0 or not by_event.get("done"):
        errors = [m["message"] for m in by_event.get("error", [])]
        saved = by_event.get("checkpoint", [])
        reason = errors[-1] if errors else (
            f"killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}")
        raise dg.Failure(
            description=f"training failed: {reason}."
            + (f" Checkpoints up to step {saved[-1]['step']} are saved; re-run to resume." if saved else ""),
            metadata={"returncode": returncode, "checkpoints_saved": len(saved)},
        )
    return TrainingRun(summary=by_event["done"][-1], started=(by_event.get("start") or [{}])[-1],
                       curve=by_event.get("metrics", []), checkpoints=by_event.get("checkpoint", []))
