"""First use of a fresh instance from several processes at once (issue 22 item 3, issue 26 item 2): two
terminals on a new clone, or a script starting many commands, all create the Dagster home, its SQLite
schema and the pool limits. Each command must end as it would alone, and the home must stay usable."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from reference_arch.common.pools import POOL_LIMITS, SQLITE_STORAGE_DBS, apply_pool_limits
from reference_arch.common.settings import write_instance_config

CLI = str(Path(sys.executable).with_name("reference-arch"))
POOLS = [sys.executable, "-m", "reference_arch.common.pools"]  # what `make dev` and the docker daemon run first


def fresh_env(root: Path) -> dict[str, str]:
    """The environment of a new clone: a DAGSTER_HOME and REFERENCE_ARCH_HOME that do not exist yet."""
    return {**os.environ, "DAGSTER_HOME": str(root / "dagster_home"), "REFERENCE_ARCH_HOME": str(root / "home")}


def at_once(commands: list[list[str]], env: dict[str, str]) -> list[tuple[int, list[str]]]:
    """Start the commands together; each one's exit code and output lines (stdout and stderr)."""
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c in commands]
    return [(p.wait(timeout=300), p.stdout.read().splitlines()) for p in procs]


def schema_versions(dagster_home: Path) -> dict[str, list[str]]:
    """Each SQLite storage's stamped schema versions: more than one is the "more than one head" fault."""
    found = {}
    for name in SQLITE_STORAGE_DBS:
        with sqlite3.connect(dagster_home / name) as conn:
            found[name] = [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
    return found


def refused_in_one_line(code: int, lines: list[str]) -> bool:
    return code == 1 and len(lines) == 1 and lines[0].startswith("error:") and "empty" in lines[0]


def test_five_first_asks_at_once_each_end_in_one_line(tmp_home, tmp_path):
    # Before the fix, 3 of 4 tries had a process die in a 49-115-line traceback (IntegrityError on
    # concurrency_limits, "table ... already exists", alembic's "more than one head").
    for attempt in range(3):
        env = fresh_env(tmp_path / f"try{attempt}")
        outcomes = at_once([[CLI, "ask", "prompt", ""]] * 5, env)
        assert all(refused_in_one_line(*o) for o in outcomes), f"try {attempt}: {outcomes}"
        assert all(len(v) == 1 for v in schema_versions(Path(env["DAGSTER_HOME"])).values())
        later = subprocess.run([CLI, "ask", "prompt", ""], env=env, capture_output=True, text=True, timeout=300)
        assert refused_in_one_line(later.returncode, (later.stdout + later.stderr).splitlines()), later


def test_twenty_first_commands_at_once_leave_the_home_usable(tmp_home, tmp_path):
    # Before the fix, 1 of 1 tries: 11 of 20 processes failed, and every later command said "Version
    # table 'alembic_version' has more than one head present".
    env = fresh_env(tmp_path)
    outcomes = at_once([[CLI, "ask", "prompt", ""]] * 14 + [POOLS] * 6, env)
    asks, pools = outcomes[:14], outcomes[14:]
    assert all(refused_in_one_line(*o) for o in asks), asks
    assert all(code == 0 and not any("Traceback" in line for line in lines) for code, lines in pools), pools
    home = Path(env["DAGSTER_HOME"])
    assert all(len(v) == 1 for v in schema_versions(home).values()), schema_versions(home)
    later = subprocess.run(POOLS, env=env, capture_output=True, text=True, timeout=300)
    assert later.returncode == 0 and later.stdout.splitlines() == [f"pool {p}: {n} at a time" for p, n in
                                                                   POOL_LIMITS.items()], later
    os.environ["DAGSTER_HOME"] = str(home)  # tmp_home's monkeypatch restores it
    with dg.DagsterInstance.get() as instance:
        limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
        slots = {p: instance.event_log_storage.get_concurrency_info(p).slot_count for p in POOL_LIMITS}
    assert {p: limits.get(p) for p in POOL_LIMITS} == POOL_LIMITS == slots


def _set_limits_after(barrier, results) -> None:
    """A process setting the pool limits on the shared instance the moment all are ready."""
    instance = dg.DagsterInstance.get()
    barrier.wait()
    try:
        apply_pool_limits(instance)
        results.put("ok")
    except Exception as err:  # noqa: BLE001 - reported to the test
        results.put(f"{type(err).__name__}: {str(err).splitlines()[0]}")


def test_pool_limits_set_by_five_processes_at_once(tmp_home):
    # Without the lock (a daemon, a run claiming the pool, an older CLI): Dagster reads, then inserts the
    # pool's row. Before the fix, 4 of 4 tries had 1-4 of 5 processes fail with IntegrityError.
    home = Path(os.environ["DAGSTER_HOME"])
    write_instance_config(home)
    dg.DagsterInstance.get()  # the schema exists: only the pool rows are raced
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(5), spawn.Queue()
    procs = [spawn.Process(target=_set_limits_after, args=(barrier, results)) for _ in range(5)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    assert outcomes == ["ok"] * 5
    with dg.DagsterInstance.get() as instance:
        slots = {p: instance.event_log_storage.get_concurrency_info(p).slot_count for p in POOL_LIMITS}
    assert slots == POOL_LIMITS


def test_a_home_left_with_two_schema_versions_is_repaired(tmp_home):
    # What two commands at once left before the fix: runs.db stamped twice (the pre-2.0 fallback
    # and head), and every command after failed with "more than one head present".
    from reference_arch.cli.runs import instance as cli_instance

    home = Path(os.environ["DAGSTER_HOME"])
    write_instance_config(home)
    with dg.DagsterInstance.get() as instance:
        run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job())
    ((head,),) = set(map(tuple, schema_versions(home).values()))
    with sqlite3.connect(home / "history/runs.db") as conn:
        conn.execute("INSERT INTO alembic_version VALUES ('5771160a95ad')")
    with pytest.raises(Exception, match="more than one head"):  # the control: Dagster alone refuses it
        dg.DagsterInstance.get()

    inst = cli_instance()
    assert schema_versions(home)["history/runs.db"] == [head]
    assert inst.get_run_by_id(run.run_id) is not None  # nothing stored is lost
