"""Each partition's own row count in a run that loads a range of partitions at once.

A single-run backfill (``BackfillPolicy.single_run``) loads many days in one dlt load, and Dagster
records that run's materialization metadata on every partition of the range; it has no per-partition
value (dagster-io/dagster#18123). So after the load, the rows this load wrote (``_dlt_load_id``) are
read back from the warehouse and grouped by the partition whose window holds them, and each asset
gets one ``AssetObservation`` per partition with ``rows_loaded``: the count shown in that partition's
history. A partition the load wrote nothing for observes 0.

Which partition a row belongs to is the column the source windows on:

- ``github/issues``: ``updated_at`` (``github_source``'s default ``window_on``).
- ``github/comments``: their issue's ``updated_at`` (comments are loaded with their issue).
- ``slack/messages``: ``ts`` (epoch seconds; the ``messages`` cursor).
- ``docs/pages``: the ``partition`` column (marker rows included: they are stored rows of the load).

``slack/channels`` and ``slack/users`` are whole snapshots, not windowed: they get no per-day count.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

import dagster as dg

# The tables the queries below read, per source.
DLT_TABLES = {"github": ("issues", "comments"), "slack": ("messages",), "docs": ("pages",)}
# (source, resource) -> SQL selecting, per row of this load, the value that places it in a partition.
# ``{t}`` names a table of the dataset, ``{loads}`` the load ids' placeholders.
QUERIES = {
    ("github", "issues"): "SELECT i.updated_at FROM {t[issues]} i WHERE i._dlt_load_id IN ({loads})",
    ("github", "comments"): "SELECT i.updated_at FROM {t[comments]} c JOIN {t[issues]} i ON c.issue_id = i.id "
                            "WHERE c._dlt_load_id IN ({loads})",
    ("slack", "messages"): "SELECT m.ts FROM {t[messages]} m WHERE m._dlt_load_id IN ({loads})",
    ("docs", "pages"): "SELECT p.partition FROM {t[pages]} p WHERE p._dlt_load_id IN ({loads})",
}


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    return float(value)  # a Slack ts


def _key_maker(partitions_def: dg.PartitionsDefinition) -> Callable[[Any], str]:
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return lambda value: partitions_def.get_partition_key_for_timestamp(_epoch(value))
    return str  # dynamic partitions: the row names its partition


def partition_row_counts(pipeline, source_name: str, resources: list[str], partition_keys: list[str],
                         partitions_def: dg.PartitionsDefinition) -> dict[str, dict[str, int]]:
    """``{resource: {partition key: rows}}`` for the rows the pipeline's last load wrote, every key of
    ``partition_keys`` present (0 when none). Resources that are not windowed are left out. Call it
    under ``warehouse.locked()``, right after the load."""
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    trace = pipeline.last_trace
    load_ids = list(trace.last_load_info.loads_ids) if trace and trace.last_load_info else []
    key_of = _key_maker(partitions_def)
    counts: dict[str, dict[str, int]] = {}
    with pipeline.sql_client() as client:
        tables = {name: client.make_qualified_table_name(name) for name in DLT_TABLES.get(source_name, ())}
        for resource in resources:
            sql = QUERIES.get((source_name, resource))
            if sql is None:
                continue
            per_key = dict.fromkeys(partition_keys, 0)
            if load_ids:
                query = sql.format(t=tables, loads=", ".join(["%s"] * len(load_ids)))
                try:
                    with client.execute_query(query, *load_ids) as cursor:
                        values = [row[0] for row in cursor.fetchall()]
                except DatabaseUndefinedRelation:  # a subset run that did not create the table
                    values = []
                for value in values:
                    key = key_of(value)
                    if key in per_key:
                        per_key[key] += 1
            counts[resource] = per_key
    return counts


def log_partition_counts(context: dg.AssetExecutionContext, counts: dict[str, dict[str, int]],
                         asset_key: Callable[[str], dg.AssetKey]) -> None:
    """One ``AssetObservation`` with ``rows_loaded`` per selected asset and partition."""
    for resource, per_key in counts.items():
        key = asset_key(resource)
        if key not in context.selected_asset_keys:
            continue
        for partition, rows in per_key.items():
            context.log_event(dg.AssetObservation(asset_key=key, partition=partition,
                                                  metadata={"rows_loaded": dg.MetadataValue.int(rows)}))
