"""One file lock per DuckDB warehouse and the dlt pipelines that load it, held across processes.

Two loads of one source at once (two partitions under the multiprocess executor, a backfill, two
runs) share two things that are not safe to share:

- the DuckDB file: one process at a time may open it for writing; another fails with "Could not
  set lock on file";
- the dlt pipeline's working folder (``<pipelines_dir>/<pipeline name>``: state, schemas, load
  packages): ``dlt.pipeline()`` reads it, and creates it (wiping what is there) when it holds no
  state; dagster-dlt's ``DagsterDltResource.run`` drops and recreates it before every load; a load
  writes its packages there. A pipeline built while another process loads can find the folder
  half-made (``FileExistsError``), or wipe the other load's packages (``FileNotFoundError``).

So everything from building the pipeline to the last read of the destination runs under
``warehouse_lock``: the second load waits for the first instead of failing or losing writes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

LOCK_NAME = "warehouse.lock"
WAIT_S = 3600  # a load waits this long for another one to finish


def lock_path(folder: str | Path) -> Path:
    """The lock file of the warehouse kept in ``folder``."""
    return Path(folder) / LOCK_NAME


@contextlib.contextmanager
def warehouse_lock(folder: str | Path) -> Iterator[None]:
    """Hold the lock of the warehouse in ``folder`` (created if missing); not re-entrant."""
    from filelock import FileLock

    Path(folder).mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path(folder)), timeout=WAIT_S):
        yield
