"""Fixtures for the production-shaped tests: a fresh Postgres database, an instance on it built
from docker/dagster.yaml, and one ``dagster dev`` webserver shared by the UI and GraphQL tests.
"""

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
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from reference_arch.common.settings import PROJECT_ROOT

LOCATIONS = ("prompt", "rag", "finetune", "pretrain")
ARTIFACTS = PROJECT_ROOT / "artifacts"


# -- Postgres ------------------------------------------------------------------------------------
def postgres_server_url() -> str | None:
    """The server to test against: ``DAGSTER_PG_URL``, or the ``DAGSTER_POSTGRES_*`` variables."""
    if os.environ.get("DAGSTER_PG_URL"):
        return os.environ["DAGSTER_PG_URL"]
    if not os.environ.get("DAGSTER_POSTGRES_HOST"):
        return None
    user = quote(os.environ.get("DAGSTER_POSTGRES_USER", "postgres"))
    password = os.environ.get("DAGSTER_POSTGRES_PASSWORD")
    auth = f"{user}:{quote(password)}" if password else user
    host, port = os.environ["DAGSTER_POSTGRES_HOST"], os.environ.get("DAGSTER_POSTGRES_PORT", "5432")
    return f"postgresql://{auth}@{host}:{port}/{os.environ.get('DAGSTER_POSTGRES_DB', 'postgres')}"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_database_url():
    """A database created for this test run and dropped after it; skips when no server is set."""
    server = postgres_server_url()
    if not server:
        message = "no Postgres configured: set DAGSTER_PG_URL (CI sets it; see .ci/prepare)"
        if os.environ.get("REFERENCE_ARCH_REQUIRE_SERVICES") == "1":  # CI: these tests must run
            pytest.fail(message)
        pytest.skip(message)
    import psycopg2

    server = server.replace("postgresql+psycopg2://", "postgresql://")  # a SQLAlchemy URL works too
    name = f"reference_arch_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(server)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield with_database(server, name)
        with admin.cursor() as cur:  # WITH (FORCE): a pooled connection may still be open
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@pytest.fixture
def pg_instance(pg_database_url, tmp_home, monkeypatch):
    """A ``DagsterInstance`` from docker/dagster.yaml, its ``DAGSTER_POSTGRES_*`` set to the test database."""
    import dagster as dg

    parts = urlsplit(pg_database_url)
    env = {
        "DAGSTER_POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": str(parts.port or 5432),
        "DAGSTER_POSTGRES_USER": parts.username or "postgres",
        # Trust auth ignores the password; docker/dagster.yaml still requires one to be set.
        "DAGSTER_POSTGRES_PASSWORD": parts.password or "unused-with-trust-auth",
        "DAGSTER_POSTGRES_DB": parts.path.lstrip("/"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    shutil.copy(PROJECT_ROOT / "docker" / "dagster.yaml", dagster_home / "dagster.yaml")
    with dg.DagsterInstance.get() as instance:
        yield instance


# -- the webserver -------------------------------------------------------------------------------
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


@pytest.fixture(scope="session")
def webserver(tmp_path_factory, tiny_model_dir):
    """``dagster dev -w workspace.yaml`` on a free loopback port with a temporary DAGSTER_HOME and a
    home whose registry holds the tiny model (the question jobs' local LLM)."""
    from reference_arch.common.registry import ModelRegistry

    root = tmp_path_factory.mktemp("webserver")
    dagster_home, reference_arch_home = root / "dagster_home", root / "home"
    dagster_home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    ModelRegistry(reference_arch_home / "models").publish("tiny-lm", tiny_model_dir, {"kind": "test"})

    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "WEAVIATE_URL", "GITHUB_TOKEN", "SLACK_BOT_TOKEN",
                        "REFERENCE_ARCH_LLM_MODEL")}
    env.update(DAGSTER_HOME=str(dagster_home), REFERENCE_ARCH_HOME=str(reference_arch_home),
               DAGSTER_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1")
    port = free_port()
    log = root / "dagster-dev.log"
    dagster = Path(sys.executable).with_name("dagster")
    with open(log, "wb") as out:
        # A session of its own (like `set -m`), so the whole process tree stops on one signal.
        process = subprocess.Popen(
            [str(dagster), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = Webserver(f"http://127.0.0.1:{port}", process, log, dagster_home, reference_arch_home)
    try:
        server.wait_until_loaded()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Screenshots and other outputs for humans (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    """Debian's headless Chromium driven by Playwright; no browser is ever downloaded."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail("Chromium is missing: `apt-get install -y chromium` (.ci/prepare does it)")
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=executable, headless=True,
            args=args, viewport={"width": 1600, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()
