"""Where the rag location's dlt pipelines load: DuckDB under the home, or any dlt destination.

DuckDB lets one process write a database file at a time, and a dlt pipeline's working folder is
not safe to share either, so loads and reads take one file lock per warehouse
(``common/warehouse_lock.py``), and a pipeline is only built under it (``locked_pipeline``): two
partitions materialized at once (multiprocess executor, or two runs) wait for each other instead of
failing or losing writes.
"""

from __future__ import annotations

import contextlib
import shlex
from typing import Any, Iterator

from reference_arch.common import settings
from reference_arch.common.settings import dlt_pipelines_dir
from reference_arch.common.warehouse_damage import check_readable as warehouse_check_readable
from reference_arch.common.warehouse_damage import damaged as damage_failure
from reference_arch.common.warehouse_damage import guarded
from reference_arch.common.warehouse_lock import warehouse_lock
from reference_arch.rag.config import rag_dir

DATASETS = {"github": "rag_github", "slack": "rag_slack", "docs": "rag_docs"}


def destination_name() -> str:
    return settings.value("rag_destination")


def warehouse_path() -> str:
    # Not "github.duckdb": a DuckDB catalog named like one of its schemas makes names ambiguous.
    return str(rag_dir() / "warehouse.duckdb")


def destination():
    import dlt

    if destination_name() == "duckdb":
        return dlt.destinations.duckdb(warehouse_path())
    return destination_name()  # credentials come from dlt's own config (env vars, secrets.toml)


def pipeline(source_name: str):
    """The dlt pipeline of one source (``github``, ``slack`` or ``docs``), working under the home.
    Building it reads, and may wipe and recreate, its working folder: call it under ``locked()``
    (``locked_pipeline`` does both)."""
    import dlt

    return dlt.pipeline(pipeline_name=f"rag_{source_name}", pipelines_dir=dlt_pipelines_dir(),
                        destination=destination(), dataset_name=DATASETS[source_name])


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Serialise loads and reads of the warehouse across processes; a DuckDB warehouse that cannot
    be opened, is shorter than its own header says, or turns out damaged while it is read or loaded
    (a block's checksum, a block past its end) fails in one line (``common/warehouse_damage``)."""
    with warehouse_lock(rag_dir()):
        if destination_name() != "duckdb":
            yield
            return
        with guarded(warehouse_path(), damaged):
            yield


@contextlib.contextmanager
def locked_pipeline(source_name: str):
    """The source's dlt pipeline, built and used under the warehouse lock: use it inside the block only."""
    with locked():
        yield pipeline(source_name)


def damaged(cause: str):
    """The one line for this location's damaged warehouse (``warehouse_damage.damaged``)."""
    return damage_failure(warehouse_path(), cause, [f"{shlex.quote(dlt_pipelines_dir())}/rag_*"], "rag")


def check_readable() -> None:
    """``warehouse_damage.check_readable`` on the DuckDB warehouse (nothing to check on another destination)."""
    if destination_name() == "duckdb":
        warehouse_check_readable(warehouse_path(), damaged)


def read_table(source_name: str, table: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """Every row of a loaded table as dicts; ``[]`` when the source was never loaded."""
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    with locked_pipeline(source_name) as dlt_pipeline, dlt_pipeline.sql_client() as client:
        if not client.has_dataset():
            return []
        selected = ", ".join(client.escape_column_name(c) for c in columns) if columns else "*"
        try:
            with client.execute_query(f"SELECT {selected} FROM {client.make_qualified_table_name(table)}") as cursor:
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row)) for row in cursor.fetchall()]
        except DatabaseUndefinedRelation:
            return []
