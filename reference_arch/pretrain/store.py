"""Where the pretrain location keeps its artifacts, and the manifests that describe them.

Each asset writes its data under ``REFERENCE_ARCH_HOME/pretrain/`` and then a JSON manifest
(atomically, last): downstream assets and checks read the manifest, so any asset can be
re-materialized on its own and no IO manager has to carry data between runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import dagster as dg

from reference_arch.common.settings import home_path

MANIFESTS = {
    "raw_corpus": "corpus/raw.json",
    "clean_corpus": "corpus/clean.json",
    "tokenizer": "tokenizer.json",
    "training_dataset": "dataset.json",
    "initial_model": "initial_model.json",
    "trained_model": "trained_model.json",
    "evaluation": "evaluation.json",
}


def path(*parts: str) -> Path:
    """A directory under the pretrain home, created on first use."""
    return home_path("pretrain", *parts)


def manifest_path(name: str) -> Path:
    return path() / MANIFESTS.get(name, f"{name}.json")


def write_manifest(name: str, data: dict[str, Any]) -> dict[str, Any]:
    from reference_arch.common.atomic import write_json

    write_json(manifest_path(name), data)
    return data


def read_manifest(name: str) -> dict[str, Any]:
    """The manifest of an upstream asset, or a failure saying which asset to materialize."""
    target = manifest_path(name)
    if not target.exists():
        raise dg.Failure(f"pretrain/{name.split('/')[0]} has not been materialized yet (no {target}); "
                         f"materialize it first")
    try:
        return json.loads(target.read_text())
    except (OSError, ValueError) as err:  # derived: the asset that wrote it writes it again
        raise dg.Failure(f"{target} cannot be read ({type(err).__name__}: {err}); re-materialize "
                         f"pretrain/{name.split('/')[0]}, which writes it again") from None


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
