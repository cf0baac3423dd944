"""A damaged DuckDB warehouse (truncated, a block's checksum wrong) found before a load writes into it, and
named in one line: the file, DuckDB's words and the way out. A warehouse is the source of truth for what was
ingested (incremental loads do not re-read what they loaded before), so it is never replaced behind the
user's back. Used by the rag and finetune locations, each under its ``warehouse_lock``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from typing import Iterator

# What DuckDB says of a damaged file, as opposed to a query's or a lock's error.
DAMAGE_MESSAGES = ("corrupt database file", "could not read enough bytes", "not a valid duckdb database file")
# DuckDB's words for a file another process holds ("Could not set lock on file ...: Conflicting lock is
# held"); not any "lock": its checksum error names a "block", and a path may hold the word.
_HELD = re.compile(r"could not set lock|conflicting lock", re.IGNORECASE)


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


def damaged(path: str, cause: str, state: list[str], location: str):
    """The one line for a damaged warehouse at ``path``: DuckDB's words (``cause``) and the two ways out with
    their commands (``state``: the dlt pipelines' folders that go aside with it; ``location``: the one to
    materialize again)."""
    import dagster as dg

    from reference_arch.common.settings import home

    aside = home() / "damaged-warehouse"
    move = f"mkdir -p {shlex.quote(str(aside))} && mv {' '.join([shlex.quote(path), *state])} {shlex.quote(str(aside))}/"
    return dg.Failure(description=(
        f"the warehouse {path} is damaged ({cause}); it holds every ingested record and is never replaced "
        f"automatically: restore it from a backup, or set it and the {location} pipelines' incremental state aside "
        f"and ingest every source again: `{move} && reference-arch materialize {location}`"))


def check_readable(path: str, failure) -> None:
    """The DuckDB file at ``path`` opens, lists its tables and is as long as its blocks in use, or raises
    ``failure(cause)``. A truncated file may still open (its catalog sits at the start): loads would then
    write into it and reads fail later, table by table. A file another process holds is not damage."""
    if not os.path.exists(path):
        return
    import duckdb

    try:
        with duckdb.connect(path, read_only=True) as con:
            con.execute("SELECT count(*) FROM duckdb_tables()").fetchall()
            block_size, blocks, free = con.execute(
                "SELECT block_size, total_blocks, free_blocks FROM pragma_database_size()").fetchone()
    except duckdb.Error as err:
        if _HELD.search(str(err)):  # held by another process's writer
            return
        raise failure((str(err).strip().splitlines() or [type(err).__name__])[0]) from None
    size = os.path.getsize(path)
    # Blocks still in the write-ahead log are not in the file yet: only a file without one is measured. Free
    # blocks at its end may have been cut off by DuckDB itself (a user's sound warehouse was 2 free blocks
    # short), so only the blocks in use are counted.
    used = blocks - free
    if not os.path.exists(path + ".wal") and size < used * block_size:
        raise failure(f"truncated: {size} bytes, shorter than the {used * block_size} bytes of its "
                      f"{used} blocks in use") from None


@contextlib.contextmanager
def guarded(path: str, failure) -> Iterator[None]:
    """``check_readable`` first, then damage found while the block loads or reads (dlt wraps DuckDB's errors:
    the damage is somewhere in the chain) raised as ``failure(cause)``; other errors pass through."""
    check_readable(path, failure)
    try:
        yield
    except Exception as err:
        found = damage(err)
        if found is None:
            raise
        raise failure(found) from None
