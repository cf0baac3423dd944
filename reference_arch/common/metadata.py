"""Metadata values shared by every location's assets."""

from __future__ import annotations

import dagster as dg


def table(records: list[dict], columns: list[tuple[str, str]] | list[str], limit: int | None = None,
          max_chars: int | None = None) -> dg.TableMetadataValue:
    """The first ``limit`` ``records`` as a UI table. ``columns`` are ``(name, type)`` pairs (Dagster's column
    types: "string", "int", "float", "bool") or bare names, typed "string". A "string" cell is the value as
    text ("" for a missing one), cut to ``max_chars``; other cells are the value as it is (missing: empty)."""
    pairs = [(c, "string") if isinstance(c, str) else c for c in columns]
    rows = records if limit is None else records[:limit]

    def cell(value, kind: str):
        if kind != "string":
            return value
        return "" if value is None else str(value)[:max_chars]

    return dg.MetadataValue.table(
        records=[dg.TableRecord({name: cell(row.get(name), kind) for name, kind in pairs}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in pairs]))
