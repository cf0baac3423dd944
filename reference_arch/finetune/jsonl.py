"""JSON Lines files, written atomically so a reader never sees half a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable


def write_jsonl(path: Path, records: Iterable[dict]) -> Path:
    from reference_arch.common.atomic import open_atomic

    with open_atomic(path, "w") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    return Path(path)


def read_jsonl(path: Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
