"""The testkit's own promises, which the tests and benchmarks lean on: an environment put back whatever the
block did, and a scratch database dropped even when the block fails."""

from __future__ import annotations

import os

import pytest

from reference_arch.testkit.environment import scoped_environment
from reference_arch.testkit.postgres import LOCAL_POSTGRES_URL, postgres_server_url, temporary_database
from reference_arch_tests.production.conftest import service_missing


def test_scoped_environment_puts_everything_back(monkeypatch):
    monkeypatch.setenv("TESTKIT_KEPT", "before")
    monkeypatch.setenv("TESTKIT_UNSET", "before")
    monkeypatch.delenv("TESTKIT_SET", raising=False)
    with pytest.raises(RuntimeError):
        with scoped_environment({"TESTKIT_SET": "inside"}, unset=["TESTKIT_UNSET"]):
            assert os.environ["TESTKIT_SET"] == "inside" and "TESTKIT_UNSET" not in os.environ
            os.environ["TESTKIT_KEPT"] = "changed inside"
            os.environ["TESTKIT_NEW"] = "made inside"
            raise RuntimeError("the block fails")
    assert os.environ["TESTKIT_KEPT"] == "before" and os.environ["TESTKIT_UNSET"] == "before"
    assert "TESTKIT_SET" not in os.environ and "TESTKIT_NEW" not in os.environ


def test_temporary_database_is_dropped_when_the_block_fails():
    server = postgres_server_url()
    if not server:
        service_missing(f"no PostgreSQL: start one accepting `{LOCAL_POSTGRES_URL}` or set DAGSTER_PG_URL")
    import psycopg2

    with pytest.raises(RuntimeError):
        with temporary_database(server, prefix="reference_arch_testkit") as url:
            name = url.rsplit("/", 1)[1]
            psycopg2.connect(url).close()  # it exists and takes connections
            raise RuntimeError("the block fails")
    admin = psycopg2.connect(server)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
            assert cur.fetchone()[0] == 0
    finally:
        admin.close()
