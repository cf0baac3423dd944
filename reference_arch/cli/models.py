"""``reference-arch models``: the chat models this project can answer with, and which one it does.

The packaged instruct model (``common/llm/packaged.py``, shipped in a Python package) and every version in
the model registry (``common/registry.py``: what ``materialize pretrain`` and ``materialize finetune``
publish). Reads files only: no Dagster instance, no model loaded, no registry folder created in a fresh home.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

HEADINGS = ("MODEL", "VERSION", "KIND", "SIZE", "FROM")


@dataclass(frozen=True)
class ModelRow:
    spec: str  # what `ask --model` and REFERENCE_ARCH_LLM_MODEL take
    version: str
    kind: str
    size: str
    origin: str

    def cells(self) -> tuple[str, ...]:
        return self.spec, self.version, self.kind, self.size, self.origin


def megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def packaged_rows() -> list[ModelRow]:
    from reference_arch.common.llm.errors import LLMError
    from reference_arch.common.llm.packaged import INSTALL_HINT, PACKAGED, gguf_path

    rows = []
    for model in PACKAGED.values():
        try:
            version = importlib.metadata.version(model.package)
            size = f"{model.parameters} parameters, {megabytes(gguf_path(model).stat().st_size)}"
        except (importlib.metadata.PackageNotFoundError, LLMError, OSError):
            version, size = "not installed", f"{model.parameters} parameters (install: {INSTALL_HINT})"
        rows.append(ModelRow(model.spec, version, f"instruct, {model.quantization} GGUF", size,
                             f"Python package {model.package} ({model.title}, {model.licence})"))
    return rows


def registry_rows(root: Path) -> list[ModelRow]:
    """One row per version in the registry at ``root``, oldest first; none when it does not exist yet."""
    from reference_arch.common.registry import ModelRegistry

    if not root.is_dir():  # a fresh home: listing must not create it
        return []
    rows = []
    for model in ModelRegistry(root).list():
        card = model.card
        kind = str(card.get("kind") or "unknown")
        if card.get("base_model"):
            kind += f", base {card['base_model']}"
        on_disk = sum(p.stat().st_size for p in model.path.rglob("*") if p.is_file())
        params = card.get("parameters")
        size = (f"{params / 1e6:.1f}M parameters, " if isinstance(params, (int, float)) else "") + megabytes(on_disk)
        run = card.get("dagster_run_id") or card.get("run_id")
        made = ", ".join(str(x) for x in (card.get("source_asset"), f"run {run[:8]}" if run else None) if x)
        rows.append(ModelRow(f"registry:{model.name}@{model.version}", str(model.version), kind, size,
                             f"{made}: {model.path}" if made else str(model.path)))
    return rows


def default_model() -> tuple[str, str]:
    """``(spec, how it was chosen)`` of the model ``ask prompt`` and ``ask rag`` answer with by default."""
    from reference_arch.common.llm.errors import LLMError
    from reference_arch.common.resources import llm_resource
    from reference_arch.common.settings import is_set

    llm = llm_resource()
    if llm.resolved_provider() == "openai":
        return llm.resolved_model(), "on an OpenAI-compatible server: OPENAI_API_KEY or OPENAI_BASE_URL is set"
    chosen = "set by REFERENCE_ARCH_LLM_MODEL" if is_set("llm_model") else "the packaged default"
    try:
        return llm.resolved_model(), chosen
    except LLMError as err:  # REFERENCE_ARCH_LLM_MODEL names a registry model not published (yet)
        return llm.model or "", f"{chosen}, which cannot answer: {err}"


def model_lines() -> list[str]:
    """The table (the default marked ``*``), then the default in words, or why the registry is empty."""
    from reference_arch.common.settings import home

    root = home() / "models"
    registered = registry_rows(root)
    rows = packaged_rows() + registered
    spec, why = default_model()
    table = [HEADINGS, *(r.cells() for r in rows)]
    widths = [max(len(cells[i]) for cells in table) for i in range(len(HEADINGS) - 1)]
    listed = any(r.spec == spec for r in rows)
    lines = []
    for i, cells in enumerate(table):
        mark = "* " if i and rows[i - 1].spec == spec else "  "
        lines.append((mark + "  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[-1]).rstrip())
    lines.append("")
    lines.append(f"{'* ' if listed else ''}the default chat model (`ask prompt`, `ask rag`): {spec} ({why}).")
    lines.append("Another for one question: `reference-arch ask ... --model MODEL`; for every run: "
                 "REFERENCE_ARCH_LLM_MODEL=MODEL.")
    if not registered:
        lines.append(f"The model registry ({root}) is empty: `reference-arch materialize pretrain`")
        lines.append("trains and publishes a model there, `reference-arch materialize finetune` tunes it.")
    return lines
