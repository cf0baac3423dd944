"""Concurrency pools: the limits the instance enforces on steps that name a pool.

Training steps declare ``pool=GPU_POOL`` so two of them never share one device; steps that send
their work to OpenAI (a fine-tuning job, embedding the corpus) declare ``pool=OPENAI_POOL`` to stay
under rate limits, through ``pool_for``, since a location's settings decide where that work goes.
Dagster 1.13's ``dagster.yaml`` takes only a default pool limit (``concurrency: pools:
default_limit``), so the per-pool limits are written into the instance here: ``python -m reference_arch.common.pools`` (the docker daemon runs
it on start-up; equal to ``dagster instance concurrency set gpu 1`` and ``... openai 4``).
``project_instance`` is the instance the CLI and that command use: set up under an inter-process lock,
so commands started at once on a fresh home do not race at creating its storage and pool rows.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import dagster as dg

GPU_POOL = "gpu"
OPENAI_POOL = "openai"

POOL_LIMITS = {GPU_POOL: 1, OPENAI_POOL: 4}


def pool_for(provider: str | None, otherwise: str | None = None) -> str | None:
    """The pool of a step whose work goes to ``provider``, as the location's resource is configured when
    its definitions load: ``OPENAI_POOL`` for "openai", else ``otherwise`` (``GPU_POOL`` for a training
    step, ``None`` for a step that needs no pool). A pool is part of the definitions: a run that
    configures the resource otherwise keeps the pool the location loaded with."""
    return OPENAI_POOL if provider == "openai" else otherwise


def apply_pool_limits(instance: dg.DagsterInstance, limits: dict[str, int] | None = None) -> dict[str, int]:
    """Write the pool limits into the instance's storage, leaving those already set as they are; returns
    the limits. Idempotent, and safe beside another process writing a pool's row at the same moment."""
    from sqlalchemy.exc import IntegrityError

    limits = POOL_LIMITS if limits is None else limits
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        raise RuntimeError(f"{type(storage).__name__} cannot enforce pools: use a SQLite or Postgres instance")
    held = {p.name: p.limit for p in storage.get_pool_limits() if not p.from_default}
    for pool, limit in limits.items():
        if held.get(pool) == limit:
            continue  # no write on every command
        try:
            storage.set_concurrency_slots(pool, limit)
        except IntegrityError:
            # Dagster reads, then inserts the pool's row (SQLite takes no row lock): a run that claimed the
            # pool (its default limit) or another project process inserted it in between. Now it is an update.
            storage.set_concurrency_slots(pool, limit)
    return dict(limits)


def project_instance(log=None) -> dg.DagsterInstance:
    """The project's instance (``DAGSTER_HOME``, see ``settings.dagster_home``) with the pool limits set and
    the slots of dead runs freed (``log``: a callable given one line per run freed). Its first use creates
    the storage schema and the pools' rows; that happens under the home's inter-process lock, so commands
    started at once on a fresh home take turns at it instead of racing."""
    from reference_arch.common.settings import dagster_home, dagster_home_lock

    home = dagster_home()
    with dagster_home_lock(home):
        for db in SQLITE_STORAGE_DBS:
            keep_one_schema_version(home / db)
        instance = dg.DagsterInstance.get()
        apply_pool_limits(instance)  # gpu: 1, openai: 4 (dagster.yaml holds only the default limit)
        free_dead_runs(instance, log=log)  # once per dead run, not once per process that finds it
    return instance


# -- runs whose worker died ----------------------------------------------------------------------
# A run whose process is killed (SIGKILL, OOM, a closed laptop) stays STARTED and keeps its pool
# slot, so the next training step waits for a slot nobody will release. Dagster's run monitoring
# (dagster.yaml) frees the slots of runs that ended, but cannot tell that an in-process run's
# worker died (the default run launcher has no worker health check). Each pool step records
# which process runs it; ``free_dead_runs`` marks runs whose recorded process is gone as failed
# and frees their slots. The CLI runs each job in its own process and tags the run with it from the
# start (``in_process_run_tags``), so a CLI run killed with SIGKILL is failed too, slot or not. The CLI
# calls it before each command; the ``free_dead_runs`` sensor every 30 s.
WORKER_HOST_TAG = "reference_arch/worker_host"
WORKER_PID_TAG = "reference_arch/worker_pid"
WORKER_START_TAG = "reference_arch/worker_start"
IN_PROCESS_TAG = "reference_arch/in_process"  # "true": the worker tags name the process running the whole run


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _process_alive(pid: int, started: str) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not started or _start_time(pid) in ("", started)


def worker_tags() -> dict[str, str]:
    """This host and process, as the worker tags name them."""
    import os
    import socket

    return {WORKER_HOST_TAG: socket.gethostname(), WORKER_PID_TAG: str(os.getpid()),
            WORKER_START_TAG: _start_time(os.getpid())}


def in_process_run_tags() -> dict[str, str]:
    """The tags of a run this process executes whole (``execute_in_process``): a later command or the sensor
    fails it once this process is gone (see ``free_dead_runs``)."""
    return {**worker_tags(), IN_PROCESS_TAG: "true"}


def record_step_worker(context) -> None:
    """Tag the run with the host and process running this step (see ``free_dead_runs``)."""
    context.instance.add_run_tags(context.run_id, worker_tags())


def free_dead_runs(instance: dg.DagsterInstance, log=None) -> list[str]:
    """Fail the unfinished runs whose recorded process (on this host) is gone, those holding a pool slot
    and those the CLI ran in its process (``IN_PROCESS_TAG``), and free the pool slots of runs that cannot
    use them (those and the runs that have ended). Returns the ids of the runs failed or freed."""
    import socket

    storage = instance.event_log_storage
    holders: set[str] = set()
    if storage.supports_global_concurrency_limits:
        holders.update(storage.get_concurrency_run_ids())
        for pool in storage.get_concurrency_keys():
            holders.update(slot.run_id for slot in storage.get_concurrency_info(pool).claimed_slots)
    host = socket.gethostname()
    unfinished = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                  dg.DagsterRunStatus.CANCELING]
    in_process = instance.get_run_ids(dg.RunsFilter(statuses=unfinished, tags={IN_PROCESS_TAG: "true",
                                                                              WORKER_HOST_TAG: host}))
    acted = []
    for run_id in sorted(holders | set(in_process)):
        run = instance.get_run_by_id(run_id)
        failed = run is not None and not run.is_finished
        if failed:
            tags = run.tags
            if tags.get(WORKER_HOST_TAG) != host or not tags.get(WORKER_PID_TAG):
                continue  # not known to be dead: another host's, or a step that names no worker
            pid = int(tags[WORKER_PID_TAG])
            if _process_alive(pid, tags.get(WORKER_START_TAG, "")):
                continue
            instance.report_run_failed(run, f"the process running this run (pid {pid} on {host}) is gone: killed "
                                            "or crashed" + ("; its pool slots are freed" if run_id in holders else ""))
        if run_id in holders:
            storage.free_concurrency_slots_for_run(run_id)
        acted.append(run_id)
        if log is not None:
            log(f"marked run {run_id} failed: its process is gone" if run_id not in holders else
                f"freed the pool slots of run {run_id} ({'its process is gone' if failed else 'ended'})")
    return acted


@dg.sensor(name="free_dead_runs", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Marks runs whose worker process died as failed and frees the pool slots they hold "
                       "(see reference_arch.common.pools.free_dead_runs). Launches nothing.")
def dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    freed = free_dead_runs(context.instance, log=context.log.info)
    return dg.SkipReason(f"failed or freed the slots of {len(freed)} run(s)" if freed else "no dead run")


# -- a home that commands started at once left with two schema versions ------------------------
# The SQLite databases a DAGSTER_HOME's default storage keeps (runs, the event log's index, schedules).
SQLITE_STORAGE_DBS = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")


def keep_one_schema_version(db: Path) -> str | None:
    """Repair a SQLite storage that two processes created at once before ``project_instance`` took a
    lock: both created the (current) tables and each stamped a schema version, so ``alembic_version``
    holds two rows and Dagster refuses every command ("more than one head present"). Keeps the newest
    of them (the tables were created at it; the other is Dagster's fallback for tables it found without
    a version); touches nothing else. Returns the version kept, or None when there was nothing to do."""
    import sqlite3

    if not db.is_file():
        return None
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as conn:
        try:
            stamped = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
        except sqlite3.DatabaseError:
            return None  # no such table yet (Dagster creates it) or not a database (Dagster says so)
        if len(stamped) < 2:
            return None
        newest = next((r.revision for r in dagster_schema_history() if r.revision in stamped), None)
        if newest is None:
            return None  # versions this Dagster does not know: leave them to `dagster instance migrate`
        with conn:
            conn.execute("DELETE FROM alembic_version WHERE version_num != ?", (newest,))
    return newest


def dagster_schema_history():
    """Dagster's storage schema revisions, newest first."""
    from alembic.script import ScriptDirectory
    from dagster._core.storage.runs.sqlite import sqlite_run_storage
    from dagster._core.storage.sql import get_alembic_config

    return ScriptDirectory.from_config(get_alembic_config(sqlite_run_storage.__file__)).walk_revisions()


def main() -> None:
    # DAGSTER_HOME, or the project's .dagster_home with the repo's dagster.yaml
    with project_instance(log=print):
        for pool, limit in POOL_LIMITS.items():
            print(f"pool {pool}: {limit} at a time")


if __name__ == "__main__":
    main()
