"""Live progress while the CLI runs a job: read from the run's event log by a thread beside the run.

What it shows is what the steps already log, as they log it:
- training (``pretrain/trained_model``, ``finetune/fine_tuned_model``, ``finetune/preference_tuned_model``): the
  trainer's ``step N/M loss X ...`` line at each log step (``common/trainer/loop.py``'s ``Streamer``, sent from
  the training process through Dagster Pipes), shown as steps done of all, the loss and the time left;
- embedding (``rag/embeddings``): ``embedded N/M`` after each batch of chunks (``rag/embedding_cache.py``).

On a terminal the newest state is one line, redrawn in place (``\\r``); anywhere else (tests, CI, a pipe) it is a
plain line, at most one every ``PLAIN_EVERY_S`` seconds, and the newest state once more when the run ends. A step
that reports no progress gets the heartbeat instead: a line naming it, and the minutes the run has taken, when
nothing has been printed for ``HEARTBEAT_SECONDS``. Every line starts on a line of its own and leaves the cursor
at its end, so what the CLI prints after the run (``.``, `` ok``) follows it.

Plain lines, not rich or tqdm (both installed): the CLI's own output is made of partial lines (a step's name,
then a dot per run, then ``ok``) that a live display taking over the terminal would tear apart.
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

HEARTBEAT_SECONDS = 60.0  # a run with nothing else to say names the step it is in after this long, and again
PLAIN_EVERY_S = 30.0  # not on a terminal: a progress line at most this often
POLL_TTY_S, POLL_PLAIN_S = 1.0, 5.0  # how often the event log is read
INDENT = "    "

# The lines the steps log (``Streamer.on_log``; ``cached_embed``), matched from their start.
TRAINING = re.compile(r"step (?P<done>\d+)/(?P<total>\d+) loss (?P<loss>[-+0-9.eE]+|nan|inf)\b")
EMBEDDING = re.compile(r"embedded (?P<done>\d+)/(?P<total>\d+)$")
RESUMED = re.compile(r"training on .*resuming from \S+ \(step (?P<done>\d+)/(?P<total>\d+)\)$")  # entry.py


@dataclass(frozen=True)
class Progress:
    """One progress report of a run's step: ``done`` of ``total`` at ``at`` (the event's time, in seconds)."""

    step: str  # the asset, as the CLI names it: "pretrain/trained_model"
    kind: str  # "train" (optimizer steps) | "embed" (chunks) | "resume" (training resumed at a checkpoint)
    done: int
    total: int
    at: float
    loss: Optional[float] = None


def step_name(step_key: Optional[str]) -> str:
    return (step_key or "").replace("__", "/")


def parse(step_key: Optional[str], message: str, at: float) -> Optional[Progress]:
    """The progress a log line of a step reports, or None."""
    if match := TRAINING.match(message):
        return Progress(step_name(step_key), "train", int(match["done"]), int(match["total"]), at,
                        float(match["loss"]))
    if match := EMBEDDING.match(message):
        return Progress(step_name(step_key), "embed", int(match["done"]), int(match["total"]), at)
    if match := RESUMED.match(message):
        return Progress(step_name(step_key), "resume", int(match["done"]), int(match["total"]), at)
    return None


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def describe(event: Progress, since: Optional[Progress] = None) -> str:
    """One line for ``event``; with an earlier report of the same work (``since``), the time left at the rate
    between the two."""
    share = f"({100 * event.done // event.total}%)" if event.total else ""
    if event.kind == "resume":  # the same data and settings as an earlier run: its checkpoint goes on
        left = "nothing left to train" if event.done >= event.total else f"{event.total - event.done:,} steps to go"
        return f"{INDENT}{event.step}: resumed from an earlier run's checkpoint at step {event.done:,}/{event.total:,}, {left}"
    if event.kind == "train":
        text = f"{event.step}: step {event.done:,}/{event.total:,} {share}"
        if event.loss is not None:
            text += f", loss {event.loss:.4f}"
    else:
        text = f"{event.step}: {event.done:,}/{event.total:,} chunks embedded {share}"
    if since is not None and event.done < event.total and event.done > since.done and event.at > since.at:
        rate = (event.done - since.done) / (event.at - since.at)
        text += f", ETA {duration((event.total - event.done) / rate)}"
    return INDENT + text


class ProgressView:
    """Turns progress reports and the heartbeat's ticks into what the CLI prints (``echo``, print's signature)."""

    def __init__(self, echo: Callable[..., None] = print, tty: bool = False, plain_every: float = PLAIN_EVERY_S,
                 heartbeat_every: float = HEARTBEAT_SECONDS, width: Optional[int] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.echo, self.tty, self.plain_every, self.heartbeat_every = echo, tty, plain_every, heartbeat_every
        self.width, self.clock = width, clock
        self.started = clock()
        self.first: dict[tuple, Progress] = {}  # the first report of each piece of work: where its rate starts
        self.latest: Optional[Progress] = None
        self.shown: Optional[Progress] = None  # the report printed last
        self.live = ""  # on a terminal: the line the cursor is at the end of, redrawn in place
        self.printed_at: Optional[float] = None  # when anything was printed last
        self.printed = False

    def update(self, event: Progress, now: Optional[float] = None) -> None:
        """A new report: drawn at once on a terminal, else when the last line is ``plain_every`` old."""
        now = self.clock() if now is None else now
        work = (event.step, event.kind, event.total)
        first = self.first.get(work)
        if first is None or event.done < first.done:  # new work, or the same work started over
            self.first[work] = first = event
        self.latest = event
        if self.tty or self.printed_at is None or now - self.printed_at >= self.plain_every or \
                (self.shown is not None and (self.shown.step, self.shown.kind) != (event.step, event.kind)):
            self._show(event, first, now)

    def tick(self, step: Optional[str], now: Optional[float] = None) -> None:
        """The heartbeat: the step the run is in (None before its first) when nothing was printed for a while."""
        now = self.clock() if now is None else now
        if now - (self.printed_at if self.printed_at is not None else self.started) >= self.heartbeat_every:
            self._write(f"\n{INDENT}... {step or 'starting'}, {(now - self.started) / 60:.0f} min in", now)
            self.live = ""

    def close(self, now: Optional[float] = None) -> None:
        """The run ended: the newest report, if the last line printed is older."""
        if self.latest is not None and self.latest != self.shown:
            self._show(self.latest, self.first[(self.latest.step, self.latest.kind, self.latest.total)],
                       self.clock() if now is None else now)

    def _show(self, event: Progress, first: Progress, now: float) -> None:
        line = describe(event, first if first is not event else None)
        if self.width:
            line = line[: self.width - 1]
        redraw = self.tty and self.live and self.shown is not None and \
            (self.shown.step, self.shown.kind) == (event.step, event.kind)
        if redraw:  # over the line before, its longer tail blanked, the cursor back at the end of this one
            pad = max(0, len(self.live) - len(line))
            self._write("\r" + line + " " * pad + "\b" * pad, now)
        else:
            self._write("\n" + line, now)
        self.live = line if self.tty else ""
        self.shown = event

    def _write(self, text: str, now: float) -> None:
        self.echo(text, end="", flush=True)
        self.printed_at, self.printed = now, True


class RunEvents:
    """A run's new event-log records since the last read: its progress reports and the step it is in."""

    def __init__(self, inst, run_id: str):
        self.inst, self.run_id = inst, run_id
        self.cursor: Optional[str] = None
        self.step: Optional[str] = None  # the step started last ("pretrain/trained_model")

    def read(self) -> Iterator[Progress]:
        while True:
            page = self.inst.get_records_for_run(self.run_id, cursor=self.cursor, limit=1000)
            for record in page.records:
                entry = record.event_log_entry
                if entry.dagster_event is not None:
                    if entry.dagster_event.event_type_value == "STEP_START":
                        self.step = step_name(entry.step_key)
                    continue
                event = parse(entry.step_key, entry.user_message or "", entry.timestamp)
                if event is not None:
                    yield event
            self.cursor = page.cursor or self.cursor
            if not page.has_more or not page.records:
                return


@contextmanager
def heartbeat(inst, run_id: str, echo: Callable[..., None] = print, every: float = HEARTBEAT_SECONDS,
              tty: Optional[bool] = None, end_line: bool = False) -> Iterator[ProgressView]:
    """While run ``run_id`` executes in this process: its progress (``ProgressView``) and heartbeat, from a thread
    that reads its event log. ``tty``: redraw one line (default: whether stdout is a terminal). ``end_line``: end
    the last line printed, if any, when the run ends (for a caller that prints whole lines after it)."""
    tty = sys.stdout.isatty() if tty is None else tty
    view = ProgressView(echo, tty, heartbeat_every=every,
                        width=shutil.get_terminal_size().columns if tty else None)
    events = RunEvents(inst, run_id)
    poll = min(POLL_TTY_S if tty else POLL_PLAIN_S, every)
    stop = threading.Event()

    def read() -> None:
        try:
            for event in events.read():
                view.update(event)
        except Exception:  # noqa: BLE001 - a busy event log costs a line of progress, never the run
            pass

    def beat() -> None:
        while not stop.wait(poll):
            read()
            view.tick(events.step)

    thread = threading.Thread(target=beat, name=f"progress-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield view
    finally:
        stop.set()
        thread.join()
        read()  # what the run logged since the last read
        view.close()
        if end_line and view.printed:
            echo("")
