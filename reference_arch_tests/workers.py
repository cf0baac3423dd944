"""Materializations in spawned processes, at once, as the multiprocess executor or several runs do
them; a worker's traceback goes into the failing assertion (a spawned process's stderr is not in
the test report), and a spy that says whether a warehouse lock was held at each dlt pipeline build
and DuckDB open."""

from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path


def materialize_in_process(module: str, asset_names: list[str], partition_key: str, error_file: str) -> None:
    """A worker: materialize ``module``'s assets for one partition; its traceback goes to ``error_file``."""
    try:
        import importlib

        import dagster as dg

        import reference_arch  # noqa: F401  (the offline switches)

        assets = [getattr(importlib.import_module(module), name) for name in asset_names]
        with dg.DagsterInstance.ephemeral() as instance:
            assert dg.materialize(assets, instance=instance, partition_key=partition_key).success
    except BaseException:
        Path(error_file).write_text(traceback.format_exc())
        raise


def materialize_at_once(module: str, asset_names: list[str], partition_keys: list[str], tmp_path: Path,
                        timeout_s: float = 300) -> None:
    """One spawned process per partition, all started before any is awaited; each must succeed."""
    context = multiprocessing.get_context("spawn")
    errors = {key: tmp_path / f"worker-{key}.txt" for key in partition_keys}
    workers = {key: context.Process(target=materialize_in_process, args=(module, asset_names, key, str(errors[key])))
               for key in partition_keys}
    for worker in workers.values():
        worker.start()
    for key, worker in workers.items():
        worker.join(timeout_s)
        if worker.is_alive():
            worker.terminate()
            worker.join()
        error = errors[key].read_text() if errors[key].exists() else "(the worker left no traceback)"
        assert worker.exitcode == 0, f"the worker materializing {key} exited with {worker.exitcode}:\n{error}"


def watch_lock(monkeypatch, lock_file: Path) -> list[tuple[str, bool]]:
    """Record, for every ``dlt.pipeline(...)`` build and ``duckdb.connect(...)`` in this process from now
    on, whether ``lock_file`` was held (by anyone) at that moment: ``[(what, held), ...]``."""
    import dlt
    import duckdb
    from filelock import FileLock, Timeout

    seen: list[tuple[str, bool]] = []

    def spying(module, name):
        real = getattr(module, name)

        def spy(*args, **kwargs):
            try:
                with FileLock(str(lock_file), timeout=0):
                    seen.append((name, False))
            except Timeout:
                seen.append((name, True))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)

    spying(dlt, "pipeline")
    spying(duckdb, "connect")
    return seen
