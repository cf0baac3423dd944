"""Plain ``dagster dev`` for the UI and GraphQL tests and the production benchmark: started on a free
loopback port in a session of its own (job control), polled over GraphQL until every location is
loaded, stopped by its process group."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from reference_arch.common.locations import LOCATIONS
from reference_arch.common.settings import PROJECT_ROOT
from reference_arch.testkit.environment import SECRETS_AND_SWITCHES
from reference_arch.testkit.tiny_model import TINY_MODEL_NAME



def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise AssertionError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


LOCATIONS_QUERY = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def location_statuses(url: str) -> dict[str, dict]:
    """Location name -> {"status": LOADING | LOADED, "error": the load error's message or None}."""
    workspace = graphql(url, LOCATIONS_QUERY)["workspaceOrError"]
    statuses = {}
    for entry in workspace.get("locationEntries", []):
        loaded = entry["locationOrLoadError"] or {}
        error = loaded.get("message") if loaded.get("__typename") == "PythonError" else None
        statuses[entry["name"]] = {"status": entry["loadStatus"], "error": error}
    return statuses


class Webserver:
    def __init__(self, url: str, process: subprocess.Popen, log: Path, dagster_home: Path, reference_arch_home: Path):
        self.url, self.process, self.log = url, process, log
        self.dagster_home, self.reference_arch_home = dagster_home, reference_arch_home

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def wait_until_loaded(self, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        statuses: dict = {}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                statuses = location_statuses(self.url)
            except (urllib.error.URLError, ConnectionError, TimeoutError, AssertionError):
                statuses = {}
            if set(LOCATIONS) <= set(statuses) and all(statuses[n]["status"] == "LOADED" for n in LOCATIONS):
                errors = {n: s["error"] for n, s in statuses.items() if s["error"]}
                if errors:
                    raise AssertionError(f"code locations failed to load: {errors}")
                return statuses
            time.sleep(1)
        raise AssertionError(f"locations not loaded after {timeout}s: {statuses}\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to dagster dev's process group (its own session), then SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


CHECKOUT_FILES = ("pyproject.toml", "workspace.yaml", "dagster.yaml")  # what plain `dagster dev` reads in cwd


def start_webserver(root: Path, tiny_model_dir: Path) -> Webserver:
    """Plain ``dagster dev`` (no ``-w``, no ``DAGSTER_HOME``), as a user types it in the repo root:
    run in a copy of the root's files that ``dagster dev`` reads (pyproject.toml, workspace.yaml,
    dagster.yaml), so its instance lives in that copy's ``.dagster_home/``, where the CLI's default
    instance would be; a home whose registry holds the tiny model (the question jobs' local LLM);
    offline backends."""
    from reference_arch.common.registry import ModelRegistry
    from reference_arch.common.settings import write_instance_config

    checkout, reference_arch_home = root / "checkout", root / "home"
    checkout.mkdir(parents=True)
    for name in CHECKOUT_FILES:
        shutil.copy(PROJECT_ROOT / name, checkout / name)
    dagster_home = checkout / ".dagster_home"
    dagster_home.mkdir()
    write_instance_config(dagster_home)  # as `reference-arch` leaves it after a first run
    ModelRegistry(reference_arch_home / "models").publish(TINY_MODEL_NAME, tiny_model_dir, {"kind": "test"})
    env = {k: v for k, v in os.environ.items() if k not in (*SECRETS_AND_SWITCHES, "DAGSTER_HOME")}
    env.update(REFERENCE_ARCH_HOME=str(reference_arch_home), DAGSTER_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1")
    port = free_port()
    log = root / "dagster-dev.log"
    dagster = Path(sys.executable).with_name("dagster")
    with open(log, "wb") as out:
        # A session of its own (like `set -m`), so the whole process tree stops on one signal.
        process = subprocess.Popen(
            [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Webserver(f"http://127.0.0.1:{port}", process, log, dagster_home, reference_arch_home)
