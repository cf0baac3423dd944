"""Concurrency pools: the limits the instance enforces on steps that name a pool.

Training steps declare ``pool=GPU_POOL`` so two of them never share one device; steps that call
OpenAI declare ``pool=OPENAI_POOL`` to stay under rate limits. Dagster 1.13's ``dagster.yaml``
takes only a default pool limit (``concurrency: pools: default_limit``), so the per-pool limits are
written into the instance here: ``python -m reference_arch.common.pools`` (the docker daemon runs
it on start-up; equal to ``dagster instance concurrency set gpu 1`` and ``... openai 4``).
"""

from __future__ import annotations

import dagster as dg

GPU_POOL = "gpu"
OPENAI_POOL = "openai"

POOL_LIMITS = {GPU_POOL: 1, OPENAI_POOL: 4}


def apply_pool_limits(instance: dg.DagsterInstance, limits: dict[str, int] | None = None) -> dict[str, int]:
    """Write the pool limits into the instance's storage; returns what was set."""
    limits = POOL_LIMITS if limits is None else limits
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        raise RuntimeError(f"{type(storage).__name__} cannot enforce pools: use a SQLite or Postgres instance")
    for pool, limit in limits.items():
        storage.set_concurrency_slots(pool, limit)
    return dict(limits)


def main() -> None:
    from reference_arch.common.settings import dagster_home

    dagster_home()  # DAGSTER_HOME, or the project's .dagster_home with the repo's dagster.yaml
    with dg.DagsterInstance.get() as instance:
        for pool, limit in apply_pool_limits(instance).items():
            print(f"pool {pool}: {limit} at a time")


if __name__ == "__main__":
    main()
