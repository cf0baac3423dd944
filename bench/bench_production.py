"""The production shape, measured: how long plain ``dagster dev`` takes to load the four locations, one
question answered through the GraphQL client against it vs the same question through ``reference-arch
ask`` (goal: at most 1.5x), and a run's overhead on Postgres vs SQLite instance storage (when a server
is found, as the tests find one).

The GraphQL path pays what the CLI does not: the run queue (the daemon's QueuedRunCoordinator polls),
a run worker process started by the code server, and the client's status polling. Question jobs run
in one process (in_process_executor), so no process per step is left to pay."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg

from reference_arch.common.questions import question_run_config
from reference_arch.common.settings import PROJECT_ROOT, write_instance_config


def graphql_answer_seconds(server, question: str) -> float:
    """Launch ``prompt_question_job`` through the GraphQL client and poll until it ends."""
    from dagster_graphql import DagsterGraphQLClient

    url = urlsplit(server.url)
    client = DagsterGraphQLClient(url.hostname, port_number=url.port, timeout=60)
    started = time.perf_counter()
    run_id = client.submit_job_execution("prompt_question_job", repository_location_name="prompt",
                                         run_config=question_run_config("prompt", question))
    while client.get_run_status(run_id) not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE):
        time.sleep(0.2)
    assert client.get_run_status(run_id) == dg.DagsterRunStatus.SUCCESS, run_id
    return time.perf_counter() - started


def cli_answer_seconds(server, question: str) -> float:
    """``reference-arch ask prompt QUESTION`` as a user runs it (a new process), on the server's homes: the
    command line is the surface measured here, so it is run, not imported."""
    env = {**os.environ, "DAGSTER_HOME": str(server.dagster_home),
           "REFERENCE_ARCH_HOME": str(server.reference_arch_home)}
    command = [sys.executable, "-m", "reference_arch.cli", "ask", "prompt", question, "--json"]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, cwd=PROJECT_ROOT)
    return time.perf_counter() - started


def run_overhead_ms(instance: dg.DagsterInstance, repeats: int = 3) -> float:
    """Median wall time of a small run (two cheap assets: the question and its prompt) on ``instance``."""
    from reference_arch.prompt.defs import prompt

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = dg.materialize([prompt.question, prompt.prompt], instance=instance,
                                run_config=question_run_config("prompt", "What is a DataFrame?"))
        assert result.success
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def storage_rows(root: Path) -> list[dict]:
    from reference_arch.testkit.postgres import postgres_server_url, temporary_database

    os.environ["DAGSTER_HOME"] = str(root / "sqlite_home")
    (root / "sqlite_home").mkdir()
    write_instance_config(root / "sqlite_home")
    with dg.DagsterInstance.get() as instance:
        sqlite_ms = run_overhead_ms(instance)
    rows = [{"metric": "small run, SQLite instance", "value": round(sqlite_ms), "unit": "ms", "target": "", "ok": None}]
    server = postgres_server_url()
    if not server:
        return rows
    with temporary_database(server, prefix="reference_arch_bench") as url:
        storage = {"postgres": {"postgres_url": url.replace("postgresql://", "postgresql+psycopg2://")}}
        with dg.instance_for_test(overrides={"storage": storage}) as instance:
            pg_ms = run_overhead_ms(instance)
    rows += [
        {"metric": "small run, Postgres instance", "value": round(pg_ms), "unit": "ms", "target": "", "ok": None},
        {"metric": "Postgres / SQLite run time", "value": round(pg_ms / sqlite_ms, 2), "unit": "x",
         "target": "<= 2", "ok": pg_ms / sqlite_ms <= 2},
    ]
    return rows


def run() -> dict:
    import reference_arch  # noqa: F401
    from reference_arch.testkit.environment import scoped_environment
    from reference_arch.testkit.tiny_model import build_tiny_model
    from reference_arch.testkit.webserver import start_webserver

    root = Path(tempfile.mkdtemp(prefix="bench-production-"))
    try:
        with scoped_environment({"REFERENCE_ARCH_HOME": str(root / "home")}):
            rows = storage_rows(root)
            server = start_webserver(root / "webserver", build_tiny_model(root / "tiny-model"))
            started = time.perf_counter()
            try:
                server.wait_until_loaded()
                ready = time.perf_counter() - started
                # Warm both paths once (code servers, the model's files in the page cache); then each
                # question is new to the response cache, so both pay one generation. Alternated, medians.
                graphql_answer_seconds(server, "What is a series? (warm-up)")
                cli_answer_seconds(server, "What is a series? (warm-up 2)")
                via_graphql, via_cli = [], []
                for i in range(3):
                    via_graphql.append(graphql_answer_seconds(server, f"What is a series? (graphql {i})"))
                    via_cli.append(cli_answer_seconds(server, f"What is a series? (cli {i})"))
            finally:
                server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    graphql_s, cli_s = statistics.median(via_graphql), statistics.median(via_cli)
    rows = [
        {"metric": "dagster dev: four locations loaded", "value": round(ready, 1), "unit": "s", "target": "<= 60",
         "ok": ready <= 60},
        {"metric": "question via GraphQL (prompt, dagster dev), median of 3", "value": round(graphql_s, 1),
         "unit": "s", "target": "", "ok": None},
        {"metric": "same question via `reference-arch ask prompt`, median of 3", "value": round(cli_s, 1),
         "unit": "s", "target": "", "ok": None},
        {"metric": "GraphQL / CLI question time", "value": round(graphql_s / cli_s, 2), "unit": "x",
         "target": "<= 1.5", "ok": graphql_s / cli_s <= 1.5},
        *rows,
    ]
    return {"title": "Production shape: webserver, GraphQL answers, instance storage", "rows": rows}
