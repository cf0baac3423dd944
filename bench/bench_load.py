"""Code-location load time: each definitions module against a bare ``import dagster``.

Each figure is the median wall time of fresh interpreters, alternating the baseline and the
locations so that machine noise hits them alike; the ratio is what counts.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from reference_arch.common.locations import LOCATIONS
from reference_arch.common.settings import PROJECT_ROOT

REPEATS = 7
TARGET = 1.3  # issue 13: a location loads within 1.3x a bare `import dagster`


def _time(statement: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, cwd=PROJECT_ROOT, capture_output=True)
    return time.perf_counter() - started


def run() -> dict:
    statements = {"dagster": "import dagster", **{loc: f"import reference_arch.{loc}.definitions" for loc in LOCATIONS}}
    for statement in statements.values():  # warm the bytecode caches
        _time(statement)
    samples: dict[str, list[float]] = {name: [] for name in statements}
    for _ in range(REPEATS):
        for name, statement in statements.items():
            samples[name].append(_time(statement))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    rows = [{"metric": "import dagster (median)", "value": round(medians["dagster"], 3), "unit": "s"}]
    for loc in LOCATIONS:
        ratio = medians[loc] / medians["dagster"]
        rows.append({"metric": f"{loc} definitions / import dagster", "value": round(ratio, 2), "unit": "x",
                     "target": f"<= {TARGET}", "ok": ratio <= TARGET})
    return {"title": "Code-location load time", "repeats": REPEATS, "medians_s": medians, "rows": rows}
