"""Where the corpus work of pretraining runs: in the asset's process (``local``, the default) or on a Ray
cluster through Ray Data (``ray``), chosen by ``REFERENCE_ARCH_PRETRAIN_ENGINE``.

What moves is the work done one document at a time, with nothing shared between documents: the cleaning's
verdict on each file (the rules, the Python parse) and its MinHash signature, and each shard's tokenization.
What needs the whole corpus stays in the asset's process, in path order: which of a group of exact or near
duplicates is kept (a hash set and the LSH index over the signatures computed on the cluster). The same
functions run in both places, so a Ray run keeps the same files and counts the same tokens as a local one.

Ray Data, not datatrove: datatrove (FineWeb's pipeline; local, Slurm and Ray executors) would replace the
project's own cleaning rules, MinHash dedup and tokenizer writer with its blocks, and with them which
documents are kept; Ray Data runs the steps the assets already have. On Ray, ``RAY_ADDRESS`` (Ray's own
variable) names the cluster; unset, ``ray.init`` starts one on this machine with a worker per core.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

ENGINES = ("local", "ray")
BATCH_ROWS = 64  # documents per Ray task: large enough that a task outweighs its scheduling


def engine() -> str:
    from reference_arch.common import settings

    return settings.value("pretrain_engine")


def map_rows(fn: Callable[[dict], dict], rows: list[dict], where: str | None = None) -> list[dict]:
    """``[fn(row) for row in rows]``, in order, here or on Ray (``where``; default the setting). ``fn`` must be
    picklable (a module-level function or a ``functools.partial`` of one) and return a dict of plain values."""
    where = where or engine()
    if where == "local" or not rows:
        return [fn(row) for row in rows]
    return _ray_map(fn, rows)


def _ray_map(fn: Callable[[dict], dict], rows: list[dict]) -> list[dict[str, Any]]:
    import pyarrow as pa

    try:
        import ray
        import ray.data
    except ImportError:
        import dagster as dg

        raise dg.Failure("REFERENCE_ARCH_PRETRAIN_ENGINE=ray needs Ray Data: pip install 'reference-arch[ray]' "
                         "(`make install` installs it)") from None

    started_here = not ray.is_initialized()
    if started_here:
        _quiet_ray()
        ray.init(log_to_driver=False, include_dashboard=False, logging_level=logging.ERROR)  # RAY_ADDRESS, or here
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # the first of a group of duplicates is kept, as here
        context.enable_progress_bars = False
        context.print_on_execution_start = False  # the CLI prints the step's own progress

        def batch(table: pa.Table) -> pa.Table:
            return pa.Table.from_pylist([fn(row) for row in table.to_pylist()])

        dataset = ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // BATCH_ROWS))
        return dataset.map_batches(batch, batch_format="pyarrow", batch_size=BATCH_ROWS).take_all()
    finally:
        if started_here:
            # a cluster started for this call ends with it: a step's process may exit without Ray's atexit
            # hook, which left its node agents running
            ray.shutdown()


def _quiet_ray() -> None:
    # Ray's INFO and its local cluster's token notice are printed inside the CLI's progress lines otherwise
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
