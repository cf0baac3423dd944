"""Fixtures for the production-shaped tests: a fresh Postgres database, an instance on it built
from docker/dagster.yaml, and one ``dagster dev`` webserver shared by the UI and GraphQL tests
(the server, the database and the webserver runner are ``reference_arch.testkit``'s, shared with bench/).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from reference_arch.common.settings import PROJECT_ROOT
from reference_arch.testkit.postgres import LOCAL_POSTGRES_URL, postgres_server_url, temporary_database
from reference_arch.testkit.webserver import Webserver, start_webserver

ARTIFACTS = PROJECT_ROOT / "artifacts"


# -- services: used when the machine has them, else skipped with one line (CI: required) ---------
def service_missing(message: str) -> None:
    """Skip with ``message`` (how to enable the tests), or fail under REFERENCE_ARCH_REQUIRE_SERVICES=1 (CI)."""
    if os.environ.get("REFERENCE_ARCH_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_database_url():
    """A database created for this test run and dropped after it; skips when no server is found."""
    server = postgres_server_url()
    if not server:
        service_missing(f"no PostgreSQL: start one accepting `{LOCAL_POSTGRES_URL}` or set DAGSTER_PG_URL "
                        "to run the Postgres tests (.ci/prepare starts one)")
    with temporary_database(server) as url:
        yield url


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


@pytest.fixture(scope="session")
def webserver(tmp_path_factory, tiny_model_dir) -> Webserver:
    """One ``dagster dev`` for the browser and GraphQL tests (``reference_arch.testkit.webserver``)."""
    server = start_webserver(tmp_path_factory.mktemp("webserver"), tiny_model_dir)
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


def chromium_executable() -> str | None:
    """Debian's ``chromium`` on PATH (or at /usr/bin/chromium), else None."""
    found = shutil.which("chromium") or "/usr/bin/chromium"
    return found if Path(found).exists() else None


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """Debian's headless Chromium driven by Playwright; no browser is ever downloaded.

    Module-scoped: Playwright's sync API keeps an event loop running in the main thread while it
    is open, which breaks later tests that call ``asyncio.run`` (Dagster's automation evaluator)."""
    executable = chromium_executable()
    if executable is None:
        service_missing("no Chromium: `apt-get install -y chromium` (Debian's package; Playwright downloads "
                        "none) to run the browser tests (.ci/prepare installs it)")
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


# -- a small RAG index ---------------------------------------------------------------------------
def tiny_rag_exports(root: Path) -> dict[str, str]:
    """Settings pointing the rag sources at the rag tests' tiny exports, written under ``root``."""
    from reference_arch_tests.rag.conftest import write_exports

    paths = write_exports(root)
    return {"REFERENCE_ARCH_GITHUB_EXPORT": str(paths["github"]), "REFERENCE_ARCH_SLACK_EXPORT": str(paths["slack"]),
            "REFERENCE_ARCH_DOCS_DIR": str(paths["docs"]), "REFERENCE_ARCH_DOCS_PACKAGES": "json",
            "REFERENCE_ARCH_RAG_EVAL_SET": str(paths["eval_set"])}


def build_rag_index(instance) -> None:
    """What ``rag_question_job`` reads, built on ``instance`` under the current home: two days of
    the tiny exports ingested (daily partitions), then documents, chunks, embeddings and the index."""
    import dagster as dg

    from reference_arch.rag.defs import processing
    from reference_arch.rag.defs import index as rag_index
    from reference_arch_tests.rag.conftest import resources, run_ingestion

    for result in run_ingestion(instance):
        assert result.success
    index = dg.materialize([processing.documents, processing.chunks, processing.chunk_embeddings,
                            rag_index.vector_index], instance=instance, resources=resources())
    assert index.success


@pytest.fixture
def rag_exports(tmp_path, monkeypatch) -> dict[str, str]:
    settings = tiny_rag_exports(tmp_path / "rag-exports")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return settings
