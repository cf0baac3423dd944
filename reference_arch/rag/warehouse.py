"""Where the rag location's dlt pipelines load: DuckDB under the home, or any dlt destination.

DuckDB lets one process write a database file at a time, and a dlt pipeline's working folder is
not safe to share either, so loads and reads take one file lock per warehouse
(``common/warehouse_lock.py``), and a pipeline is only built under it (``locked_pipeline``): two
partitions materialized at once (multiprocess executor, or two runs) wait for each other instead of
failing or losing writes.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any, Iterator

from reference_arch.common import settings
from reference_arch.common.settings import dlt_pipelines_dir
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
    (a block's checksum, a block past its end) fails in one line (see ``check_readable``)."""
    with warehouse_lock(rag_dir()):
        check_readable()
        try:
            yield
        except Exception as err:  # dlt wraps DuckDB's errors: the damage is somewhere in the chain
            found = damage(err)
            if found is None:
                raise
            raise damaged(found) from None


@contextlib.contextmanager
def locked_pipeline(source_name: str):
    """The source's dlt pipeline, built and used under the warehouse lock: use it inside the block only."""
    with locked():
        yield pipeline(source_name)


# What DuckDB says of a damaged file, as opposed to a query's or a lock's error.
DAMAGE_MESSAGES = ("corrupt database file", "could not read enough bytes", "not a valid duckdb database file")


def damage(err: BaseException) -> str | None:
    """DuckDB's first line about a damaged file, found in ``err`` or what caused it; None for other errors."""
    import duckdb

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        first = (str(err).strip().splitlines() or [""])[0]
        if isinstance(err, duckdb.Error) and any(m in first.lower() for m in DAMAGE_MESSAGES):
            return first
        err = err.__cause__ or err.__context__
    return None


def damaged(cause: str):
    """The one line for a damaged DuckDB warehouse: the file, DuckDB's words, and the two ways out with their
    commands. It is the source of truth for everything ingested (incremental loads do not re-read what they
    loaded before), so it is never replaced or rebuilt behind the user's back."""
    import shlex

    import dagster as dg

    from reference_arch.common.settings import home

    path, aside = warehouse_path(), home() / "damaged-warehouse"
    move = (f"mkdir -p {shlex.quote(str(aside))} && mv {shlex.quote(path)} {shlex.quote(dlt_pipelines_dir())}/rag_* "
            f"{shlex.quote(str(aside))}/")
    return dg.Failure(description=(
        f"the warehouse {path} is damaged ({cause}); it holds every ingested record and is never replaced "
        f"automatically: restore it from a backup, or set it and the rag pipelines' incremental state aside and "
        f"ingest every source again: `{move} && reference-arch materialize rag`"))


# DuckDB's words for a file another process holds ("Could not set lock on file ...: Conflicting lock is
# held"); not any "lock": its checksum error names a "block", and a path may hold the word.
_HELD = re.compile(r"could not set lock|conflicting lock", re.IGNORECASE)


def check_readable() -> None:
    """The DuckDB warehouse opens, lists its tables and is as long as its blocks, or a ``dg.Failure``
    naming the file and the way out (``damaged``). A truncated file may still open (its catalog sits at
    the start): loads would then write into it and reads fail later, table by table."""
    path = warehouse_path()
    if destination_name() != "duckdb" or not os.path.exists(path):
        return
    import duckdb

    try:
        with duckdb.connect(path, read_only=True) as con:
            con.execute("SELECT count(*) FROM duckdb_tables()").fetchall()
            block_size, blocks, free = con.execute(
                "SELECT block_size, total_blocks, free_blocks FROM pragma_database_size()").fetchone()
    except duckdb.Error as err:
        if _HELD.search(str(err)):  # held by another process's writer: not damage
            return
        raise damaged((str(err).strip().splitlines() or [type(err).__name__])[0]) from None
    size = os.path.getsize(path)
    # Blocks still in the write-ahead log are not in the file yet: only a file without one is measured. Free
    # blocks at its end may have been cut off by DuckDB itself (a user's sound warehouse was 2 free blocks
    # short), so only the blocks in use are counted.
    used = blocks - free
    if not os.path.exists(path + ".wal") and size < used * block_size:
        raise damaged(f"truncated: {size} bytes, shorter than the {used * block_size} bytes of its "
                      f"{used} blocks in use") from None


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
