"""Running a location's jobs in this process: the project's instance, the order of a location's
materialization runs (``plan``), and a failed run as one line (``first_failure``). What a run prints while it
executes (its progress, the heartbeat) is ``progress.py``'s."""

from __future__ import annotations

import importlib
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

from reference_arch.cli.progress import INDENT, heartbeat, step_name

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # the CLI reports failures itself


class CliError(Exception):
    """A failure reported as one line."""


def load_defs(location: str):
    import reference_arch  # noqa: F401  (offline switches)

    return importlib.import_module(f"reference_arch.{location}.definitions").defs


def instance():
    from filelock import Timeout

    from reference_arch.common.pools import project_instance
    from reference_arch.common.settings import DAGSTER_HOME_LOCK_WAIT_S

    try:  # a killed run's slot is freed here, not after a 10-minute wait
        return project_instance(log=lambda line: print(line, file=sys.stderr))
    except Timeout as err:
        raise CliError(f"another process has held {err.lock_file} for {DAGSTER_HOME_LOCK_WAIT_S:.0f} s while "
                       "setting up the Dagster instance; if it is stuck, stop it and run the command again") from None


def _first_line(error) -> str:
    lines = [line.strip() for line in (error.message or "").strip().splitlines() if line.strip()]
    return lines[0] if lines else error.cls_name


def _innermost(error):
    """The exception at the bottom of an error's ``raise ... from`` (or implicit context) chain."""
    seen = 0
    while (error.cause or error.context) is not None and seen < 20:
        error, seen = error.cause or error.context, seen + 1
    return error


def first_failure(result) -> str:
    """The first failed blocking check, step failure or run failure, as one line without the traceback wall."""
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed and data.severity.value == "ERROR":
                why = data.description or ", ".join(
                    f"{k}={v.value}" for k, v in data.metadata.items() if isinstance(v.value, (int, float, str)))
                return f"check {data.asset_key.to_user_string()}:{data.check_name} failed: {why}"
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None and error.cls_name in ("DagsterExecutionStepExecutionError",) and error.cause:
                error = error.cause
            if error is None:
                return f"step {step_name(event.step_key)} failed"
            if error.cls_name == "DagsterExecutionInterruptedError":  # SIGINT/SIGTERM while the step ran
                return f"{step_name(event.step_key)}: interrupted (Ctrl-C or SIGTERM)"
            message = _first_line(error)
            if error.cls_name == "Failure":
                message = message.split(": ", 1)[-1] if message.startswith("dagster._core") else message
            cause = _innermost(error)
            if cause is not error and _first_line(cause) not in message:
                # Wrappers (dlt's PipelineStepFailed: "... with exception:") put the cause on later lines.
                message = f"{message.rstrip(':').rstrip()}: {_first_line(cause)}"  # that line names its class
            return f"{step_name(event.step_key)}: {message}"
    for event in result.all_events:  # no step failed: the run itself (interrupted between steps, or its setup)
        if event.is_run_failure:
            data = event.event_specific_data
            error = getattr(data, "error", None)
            if (error is not None and error.cls_name == "DagsterExecutionInterruptedError") or \
                    getattr(getattr(data, "failure_reason", None), "value", None) == "UNEXPECTED_TERMINATION":
                return "interrupted (Ctrl-C or SIGTERM) between steps"
            if error is not None:
                return _first_line(_innermost(error))
            return (event.message or "the run failed").splitlines()[0]
    return "the run failed"


@dataclass
class Step:
    keys: list = field(default_factory=list)
    partitions_def: Any = None
    single_run: bool = True


def plan(defs) -> list[Step]:
    """Ordered steps, each one run (or one run per partition) of assets sharing a partitions
    definition: an asset joins the earliest step of its kind that comes after all its parents, then
    a step merges into a later one of its kind when no step between depends on it."""
    graph = defs.resolve_asset_graph()
    steps: list[Step] = []
    step_of: dict = {}
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        if not node.is_materializable:
            continue
        earliest = max(
            (step_of[p] + (steps[step_of[p]].partitions_def != node.partitions_def)
             for p in node.parent_keys if p in step_of),
            default=0,
        )
        index = next((i for i in range(earliest, len(steps)) if steps[i].partitions_def == node.partitions_def), None)
        if index is None:
            steps.append(Step([], node.partitions_def))
            index = len(steps) - 1
        # BackfillPolicy.single_run() is the policy with no per-run partition limit.
        single = node.backfill_policy is not None and node.backfill_policy.max_partitions_per_run is None
        steps[index].keys.append(key)
        steps[index].single_run &= single
        step_of[key] = index
    # A step joins a later one of its kind when no step between reads it (``prompt/question`` joins
    # its prompt and answer after the template partitions): fewer runs, and a question answered in one.
    for i in reversed(range(len(steps) - 1)):
        mine = set(steps[i].keys)
        for j in range(i + 1, len(steps)):
            if steps[j].partitions_def == steps[i].partitions_def:
                steps[j].keys[:0] = steps[i].keys
                steps[j].single_run &= steps[i].single_run
                del steps[i]
                break
            if any(mine & graph.get(k).parent_keys for k in steps[j].keys):
                break
    return steps


def step_job(location: str, step: Step, defs):
    """The step as a job named for what it materializes (``materialize_pretrain_raw_corpus_to_tokenizer``),
    so its runs read as that in the UI rather than as ``__ephemeral_asset_job__``."""
    import dagster as dg

    first, last = step.keys[0].path[-1], step.keys[-1].path[-1]
    name = f"materialize_{location}_{first}" + (f"_to_{last}" if len(step.keys) > 1 else "")
    job = dg.define_asset_job(name, selection=dg.AssetSelection.assets(*step.keys),
                              description=f"reference-arch materialize {location}: "
                                          + ", ".join(k.to_user_string() for k in step.keys))
    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, resources=defs.resources,
                          jobs=[job]).resolve_job_def(name)


def materialize_location(location: str, inst, echo=print, exclude: Iterable = ()) -> list:
    """Materialize every asset and partition of a location but the asset keys in ``exclude`` (with their
    checks); returns the run results."""
    defs = load_defs(location)
    exclude = frozenset(exclude) | switched_off(defs, echo, location)
    results = []
    for step in plan(defs):
        step.keys = [key for key in step.keys if key not in exclude]
        if not step.keys:
            continue
        names = ", ".join(k.to_user_string() for k in step.keys)
        runs: list[dict] = [{}]
        if step.partitions_def is not None:
            keys = step.partitions_def.get_partition_keys(dynamic_partitions_store=inst)
            if not keys:
                echo(f"  [{location}] {names}: no partitions yet, skipped")
                continue
            if step.single_run and len(keys) > 1:
                runs = [{"tags": {"dagster/asset_partition_range_start": keys[0],
                                  "dagster/asset_partition_range_end": keys[-1]}}]
            else:
                runs = [{"partition_key": k} for k in keys]
        label = f"{len(runs)} run(s)" if len(runs) > 1 else (
            f"{len(keys)} partition{'s' if len(keys) != 1 else ''} in one run" if step.partitions_def is not None else "1 run")
        echo(f"  [{location}] {names} ({label})", end="", flush=True)
        started = time.perf_counter()
        job = step_job(location, step, defs)
        progress_shown = False  # after a progress line, the step's end goes on a line of its own
        for run in runs:
            run_id = str(uuid.uuid4())
            with heartbeat(inst, run_id, echo) as view:
                try:
                    result = execute_run(job, inst, run_config=QUIET, run_id=run_id, **run)
                except CliError as err:  # interrupted: which location's run
                    echo(_step_end("INTERRUPTED", view.printed))
                    raise CliError(f"{location}: {err}") from None
            progress_shown = progress_shown or view.printed
            results.append(result)
            if not result.success:
                echo(_step_end("FAILED", view.printed))
                raise CliError(f"{location}: {first_failure(result)} (run {result.run_id})")
            if not view.printed:
                echo(".", end="", flush=True)
        echo(_step_end(f"ok ({time.perf_counter() - started:.1f}s)", progress_shown))
    return results


def note_input(what: str, text: str, sent: str) -> None:
    """On stderr, what the command changed in the user's ``text`` before sending it as ``sent``: bytes that
    were not UTF-8 (the shell passes them through as they are), and secrets masked (a trial saw its token
    vanish from the answer, unexplained)."""
    from reference_arch.common.redaction import placeholder_counts
    from reference_arch.common.unicode_text import repair_text

    repaired = repair_text(text or "")[1]
    if repaired:
        held = ("1 byte that is not valid UTF-8; it was" if repaired == 1 else
                f"{repaired} bytes that are not valid UTF-8; they were")
        print(f"note: the {what} held {held} replaced with U+FFFD", file=sys.stderr)
    masked = placeholder_counts(sent) - placeholder_counts(text or "")
    if masked:
        kinds = ", ".join(f"{n} {'secret' if kind.startswith('secret:') else kind}{'s' if n != 1 else ''}"
                          + (f" ({kind[7:]})" if kind.startswith("secret:") else "") for kind, n in sorted(masked.items()))
        print(f"note: the {what} held {kinds}; masked before any model, log or the run database saw it "
              "(REFERENCE_ARCH_REDACT)", file=sys.stderr)


def switched_off(defs, echo, location: str) -> frozenset:
    """The assets of a source switched off (``REFERENCE_ARCH_RAG_SOURCES``, or other sources configured: their
    ``dlt_source`` metadata), named in one line: each would be a run per partition that loads nothing (a trial
    with ``RAG_SOURCES=docs`` watched the GitHub and Slack steps run)."""
    from reference_arch.common.settings import SOURCES_ENV, enabled_sources

    enabled, graph = enabled_sources(), defs.resolve_asset_graph()
    off = {key: graph.get(key).metadata["dlt_source"] for key in graph.get_all_asset_keys()
           if graph.get(key).metadata.get("dlt_source") not in (None, *enabled)}
    if off:
        echo(f"  [{location}] {', '.join(sorted(set(off.values())))} switched off ({SOURCES_ENV}, or other sources "
             f"configured): {len(off)} asset{'s' if len(off) != 1 else ''} skipped")
    return frozenset(off)


def _step_end(word: str, after_progress: bool) -> str:
    """A step's last word: after its line (`` ok (3.1s)``), or on a line of its own under its progress lines
    (a trial read ``step 300/300 (100%), loss 3.2000 ok (152.0s)``, the time as part of the loss)."""
    return f"\n{INDENT}{word}" if after_progress else f" {word}"


def execute_run(job, inst, run_id: str | None = None, tags: dict | None = None, **kwargs):
    """``job.execute_in_process`` as the CLI runs every job: the run tagged with this process, so that a later
    command (or the sensor) fails it if this process is killed outright (``pools.free_dead_runs``), and SIGTERM
    taken as Ctrl-C. Dagster ends a run interrupted while it executes as failed; one interrupted before or after
    (creating it, writing its end) is marked canceled here, then a ``CliError`` says so."""
    import signal

    from reference_arch.common.pools import in_process_run_tags

    run_id = run_id or str(uuid.uuid4())
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None
    # Dagster raises an interrupt from its signal handler; raised inside a garbage-collection callback it is
    # "ignored" by Python and the run goes on. The wakeup fd records every signal whatever its handler does.
    seen, previous_fd = (_signal_log() if main_thread else (None, None))
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_interrupts(previous_hook)
    try:
        result = job.execute_in_process(instance=inst, run_id=run_id, raise_on_error=False,
                                        tags={**(tags or {}), **in_process_run_tags()}, **kwargs)
    except KeyboardInterrupt:
        run = inst.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            inst.report_run_canceled(run, message="interrupted (Ctrl-C or SIGTERM) before it finished")
        raise CliError(f"interrupted (Ctrl-C or SIGTERM): run {run_id} canceled") from None
    finally:
        sys.unraisablehook = previous_hook
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        interrupted = _interrupted(seen, previous_fd) if seen is not None else False
    if interrupted and result.success:
        raise CliError(f"interrupted (Ctrl-C or SIGTERM): run {run_id} finished first; nothing after it ran")
    return result


def _quiet_interrupts(previous_hook):
    """An unraisable hook that drops an interrupt raised where Python cannot raise it (a garbage-collection
    callback): Python would print its traceback (CI saw one from SQLAlchemy's weakref callback), and the wakeup
    fd has recorded the signal already. Anything else goes to ``previous_hook``."""
    def hook(unraisable):
        if not isinstance(unraisable.exc_value, KeyboardInterrupt) and \
                type(unraisable.exc_value).__name__ != "DagsterExecutionInterruptedError":
            previous_hook(unraisable)
    return hook


def _signal_log():
    """A socket the signals received from now on are written to (``signal.set_wakeup_fd``), and the fd it
    replaces."""
    import signal
    import socket

    read, write = socket.socketpair()
    read.setblocking(False)
    write.setblocking(False)
    return (read, write), signal.set_wakeup_fd(write.fileno(), warn_on_full_buffer=False)


def _interrupted(seen, previous_fd: int) -> bool:
    """Whether SIGINT or SIGTERM reached the process since ``_signal_log``; restores the previous wakeup fd."""
    import signal

    read, write = seen
    signal.set_wakeup_fd(previous_fd)
    received = b""
    try:
        while chunk := read.recv(4096):
            received += chunk
    except BlockingIOError:
        pass
    finally:
        read.close()
        write.close()
    return bool({signal.SIGINT, signal.SIGTERM} & set(received))


def check_summary(results, expected: dict[str, str] | None = None) -> list[str]:
    """One line per asset check evaluated in these runs; a failure listed in ``expected``
    (``"asset:check" -> why``) is labelled as expected, with its reason."""
    expected = expected or {}
    lines = []
    for result in results:
        for event in result.all_events:
            if event.event_type_value != "ASSET_CHECK_EVALUATION":
                continue
            data = event.event_specific_data
            numbers = {k: v.value for k, v in data.metadata.items() if isinstance(v.value, (int, float))
                       and not isinstance(v.value, bool)}
            shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(numbers.items())[:4])
            name = f"{data.asset_key.to_user_string()}:{data.check_name}"
            status = "passed" if data.passed else f"FAILED ({data.severity.value})"
            if not data.passed and name in expected:
                status += f", expected offline: {expected[name]}"
            lines.append(f"{name} {status}" + (f"  {shown}" if shown else ""))
    return lines


def questions_answered(results) -> dict[str, set[str]]:
    """Location prefix -> the questions its ``question`` asset took in these runs."""
    found: dict[str, set[str]] = {}
    for result in results:
        for event in result.all_events:
            if event.event_type_value != "ASSET_MATERIALIZATION":
                continue
            materialization = event.event_specific_data.materialization
            key = materialization.asset_key.path
            if key[-1] == "question" and "question" in materialization.metadata:
                found.setdefault(key[0], set()).add(materialization.metadata["question"].value)
    return found

