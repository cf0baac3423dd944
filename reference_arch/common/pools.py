"""Concurrency pools: the limits the instance enforces on steps that name a pool.

Training steps declare ``pool=GPU_POOL`` so two of them never share one device; steps that send
their work to OpenAI (a fine-tuning job, embedding the corpus) declare ``pool=OPENAI_POOL`` to stay
under rate limits, through ``pool_for``, since a location's settings decide where that work goes.
Dagster 1.13's ``dagster.yaml`` takes only a default pool limit (``concurrency: pools:
default_limit``), so the per-pool limits are written into the instance here: ``python -m reference_arch.common.pools`` (the docker daemon runs
it on start-up; equal to ``dagster instance concurrency set gpu 1`` and ``... openai 4``).
"""

from __future__ import annotations

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
    """Write the pool limits into the instance's storage; returns what was set."""
    limits = POOL_LIMITS if limits is None else limits
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        raise RuntimeError(f"{type(storage).__name__} cannot enforce pools: use a SQLite or Postgres instance")
    for pool, limit in limits.items():
        storage.set_concurrency_slots(pool, limit)
    return dict(limits)


# -- runs whose worker died ----------------------------------------------------------------------
# A run whose process is killed (SIGKILL, OOM, a closed laptop) stays STARTED and keeps its pool
# slot, so the next training step waits for a slot nobody will release. Dagster's run monitoring
# (dagster.yaml) frees the slots of runs that ended, but cannot tell that an in-process run's
# worker died (the default run launcher has no worker health check). Each pool step records
# which process runs it; ``free_dead_runs`` marks runs whose recorded process is gone as failed
# and frees their slots. The CLI calls it before each materialization.
WORKER_HOST_TAG = "reference_arch/worker_host"
WORKER_PID_TAG = "reference_arch/worker_pid"
WORKER_START_TAG = "reference_arch/worker_start"


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


def record_step_worker(context) -> None:
    """Tag the run with the host and process running this step (see ``free_dead_runs``)."""
    import os
    import socket

    context.instance.add_run_tags(context.run_id, {
        WORKER_HOST_TAG: socket.gethostname(), WORKER_PID_TAG: str(os.getpid()),
        WORKER_START_TAG: _start_time(os.getpid())})


def free_dead_runs(instance: dg.DagsterInstance, log=None) -> list[str]:
    """Free the pool slots of runs that hold one but cannot use it: runs that have ended, and
    unfinished runs whose recorded worker process (on this host) is gone, which are marked
    failed. Returns the ids of the runs whose slots were freed."""
    import socket

    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holders = set(storage.get_concurrency_run_ids())
    for pool in storage.get_concurrency_keys():
        holders.update(slot.run_id for slot in storage.get_concurrency_info(pool).claimed_slots)
    host = socket.gethostname()
    freed = []
    for run_id in sorted(holders):
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            tags = run.tags
            if tags.get(WORKER_HOST_TAG) != host or not tags.get(WORKER_PID_TAG):
                continue  # not known to be dead: another host's, or a step that names no worker
            pid = int(tags[WORKER_PID_TAG])
            if _process_alive(pid, tags.get(WORKER_START_TAG, "")):
                continue
            instance.report_run_failed(run, f"the process running this run (pid {pid} on {host}) is gone: "
                                            "killed or crashed; its pool slots are freed")
        storage.free_concurrency_slots_for_run(run_id)
        freed.append(run_id)
        if log is not None:
            log(f"freed the pool slots of run {run_id} ({'its process is gone' if run and not run.is_finished else 'ended'})")
    return freed


@dg.sensor(name="free_dead_runs", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Marks runs whose worker process died as failed and frees the pool slots they hold "
                       "(see reference_arch.common.pools.free_dead_runs). Launches nothing.")
def dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    freed = free_dead_runs(context.instance, log=context.log.info)
    return dg.SkipReason(f"freed the slots of {len(freed)} run(s)" if freed else "no dead run holds a pool slot")


def main() -> None:
    from reference_arch.common.settings import dagster_home

    dagster_home()  # DAGSTER_HOME, or the project's .dagster_home with the repo's dagster.yaml
    with dg.DagsterInstance.get() as instance:
        for pool, limit in apply_pool_limits(instance).items():
            print(f"pool {pool}: {limit} at a time")
        free_dead_runs(instance, log=print)


if __name__ == "__main__":
    main()
