"""The train/validation split: a stable hash of the issue's id decides its side.

The side depends only on the id (not on the order, the month or the other issues), so the same
issue always lands on the same side, re-runs and new months never move an issue across, and the
two sides cannot overlap.
"""

from __future__ import annotations

import hashlib

TRAIN = "train"
VALIDATION = "validation"


def split_of(issue_id: int | str, validation_fraction: float, salt: str = "finetune-split-v1") -> str:
    """``"validation"`` for about ``validation_fraction`` of ids, ``"train"`` for the rest."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be between 0 and 1, got {validation_fraction}")
    digest = hashlib.sha256(f"{salt}:{issue_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    return VALIDATION if position < validation_fraction else TRAIN


def split_pairs(pairs: list[dict], validation_fraction: float) -> dict[str, list[dict]]:
    """The pairs on each side, in their input order."""
    sides: dict[str, list[dict]] = {TRAIN: [], VALIDATION: []}
    for pair in pairs:
        sides[split_of(pair["issue_id"], validation_fraction)].append(pair)
    return sides
