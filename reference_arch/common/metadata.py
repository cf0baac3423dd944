"""Metadata values shared by every location's assets."""

from __future__ import annotations

import dagster as dg


def table(records: list[dict], columns: list[tuple[str, str]] | list[str], limit: int | None = None) \
        -> dg.TableMetadataValue:
    """The first ``limit`` ``records`` as a UI table. ``columns`` are ``(name, type)`` pairs (Dagster's column
    types: "string", "int", "float", "bool") or bare names, typed "string"."""
    pairs = [(c, "string") if isinstance(c, str) else c for c in columns]
    rows = records if limit is None else records[:limit]
    return dg.MetadataValue.table(
        records=[dg.TableRecord({name: row.get(name) for name, _ in pairs}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in pairs]))
