"""Two independent "training steps" in one job, for the pool test: each records when it starts and
ends, and holds on until it sees the other one start (or its patience runs out). With both in the
`gpu` pool they cannot overlap; in a pool that allows two they always do, which shows the test
would notice an overlap."""


import os
import time
from pathlib import Path

import dagster as dg

from reference_arch.common.pools import GPU_POOL, OPENAI_POOL

LOG_ENV = "REFERENCE_ARCH_POOL_TEST_LOG"


class StepConfig(dg.Config):
    patience_s: float = 3.0


def hold(name: str, other: str, patience_s: float) -> None:
    log = Path(os.environ[LOG_ENV])
    with open(log, "a") as out:
        out.write(f"{name} start {time.time()}\n")
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline and f"{other} start" not in log.read_text():
        time.sleep(0.05)
    with open(log, "a") as out:
        out.write(f"{name} end {time.time()}\n")


def two_steps(pool: str) -> dg.JobDefinition:
    @dg.asset(name=f"train_a_{pool}", pool=pool)
    def train_a(config: StepConfig) -> None:
        hold("a", "b", config.patience_s)

    @dg.asset(name=f"train_b_{pool}", pool=pool)
    def train_b(config: StepConfig) -> None:
        hold("b", "a", config.patience_s)

    job = dg.define_asset_job(f"two_training_steps_{pool}", [train_a, train_b],
                              executor_def=dg.multiprocess_executor)
    return dg.Definitions(assets=[train_a, train_b], jobs=[job]).resolve_job_def(job.name)


def gpu_job() -> dg.JobDefinition:
    return two_steps(GPU_POOL)


def openai_job() -> dg.JobDefinition:
    return two_steps(OPENAI_POOL)


def intervals(log: Path) -> dict[str, tuple[float, float]]:
    times: dict[str, dict[str, float]] = {}
    for line in log.read_text().splitlines():
        name, event, at = line.split()
        times.setdefault(name, {})[event] = float(at)
    return {name: (t["start"], t["end"]) for name, t in times.items()}
