"""``make bench``: run every ``bench/bench_*.py`` and write ``bench/results/``.

Each module exposes ``run() -> dict`` returning ``{"title": str, "rows": [{"metric", "value",
"unit", "target", "ok"}...], ...}``; this writes one JSON file per module and a Markdown table
of them all (``bench/results/RESULTS.md``). Ratios are measured within one run: these machines
are shared and noisy, so only same-run comparisons mean anything.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import reference_arch  # noqa: F401  (offline switches)

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"


def benchmark_names(argv: list[str]) -> list[str]:
    """The benchmarks named on the command line (all of them when none is); ``--help`` says which exist."""
    known = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))
    cli = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    cli.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {', '.join(known)}")
    names = cli.parse_args(argv).names
    if unknown := [name for name in names if name not in known]:
        cli.error(f"no benchmark {', '.join(unknown)}: bench/ has {', '.join(known)}")
    return names or known


def main(argv: list[str]) -> int:
    names = benchmark_names(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in names:
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            result = importlib.import_module(f"bench.{name}").run()
        except Exception as err:  # noqa: BLE001 - one broken benchmark must not hide the others
            failed += 1
            result = {"title": name, "error": repr(err), "rows": []}
        result["seconds"] = round(time.perf_counter() - started, 1)
        result["measured_at"] = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
        for row in result.get("rows", []):
            print(f"   {row['metric']}: {row['value']} {row.get('unit', '')}  (target {row.get('target', '-')})")
    write_markdown()
    print(f"results written to {RESULTS}/")
    return 1 if failed else 0


def write_markdown() -> None:
    """``RESULTS.md`` from every ``bench_*.json`` on disk, so running one benchmark (`python -m bench.run
    bench_rag`, or `python -m bench.bench_rag quality`) refreshes its section without dropping the others."""
    lines = [f"# Benchmarks ({platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores)", ""]
    for path in sorted(RESULTS.glob("bench_*.json")):
        result = json.loads(path.read_text())
        lines += [f"## {result.get('title', path.stem)}", "",
                  f"`{path.stem}`, measured {result.get('measured_at', '?')} in {result.get('seconds', '?')} s", ""]
        if "error" in result:
            lines += [f"error: `{result['error']}`", ""]
        lines += ["| metric | value | unit | target | ok |", "|---|---|---|---|---|"]
        for row in result.get("rows", []):
            ok = {True: "yes", False: "NO", None: ""}[row.get("ok")]
            lines.append(f"| {row['metric']} | {row['value']} | {row.get('unit', '')} | {row.get('target', '')} | {ok} |")
        lines.append("")
    (RESULTS / "RESULTS.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
