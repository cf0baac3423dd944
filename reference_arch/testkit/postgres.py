"""A PostgreSQL server to test or measure against, and a database made for one run on it.

The server is ``DAGSTER_PG_URL``, else the ``DAGSTER_POSTGRES_*`` variables (what docker/dagster.yaml
reads), else one accepting connections at 127.0.0.1:5432 as user ``postgres`` (what .ci/prepare starts,
and a developer's usual local server)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

LOCAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def accepts_connections(url: str, timeout_s: int = 2) -> bool:
    import psycopg2

    try:
        psycopg2.connect(url, connect_timeout=timeout_s).close()
    except psycopg2.Error:
        return False
    return True


def postgres_server_url() -> str | None:
    """The server's URL (``postgresql://``, a SQLAlchemy ``postgresql+psycopg2://`` one made plain), or None."""
    if os.environ.get("DAGSTER_PG_URL"):
        return os.environ["DAGSTER_PG_URL"].replace("postgresql+psycopg2://", "postgresql://")
    if os.environ.get("DAGSTER_POSTGRES_HOST"):
        user = quote(os.environ.get("DAGSTER_POSTGRES_USER", "postgres"))
        password = os.environ.get("DAGSTER_POSTGRES_PASSWORD")
        auth = f"{user}:{quote(password)}" if password else user
        host, port = os.environ["DAGSTER_POSTGRES_HOST"], os.environ.get("DAGSTER_POSTGRES_PORT", "5432")
        return f"postgresql://{auth}@{host}:{port}/{os.environ.get('DAGSTER_POSTGRES_DB', 'postgres')}"
    return LOCAL_POSTGRES_URL if accepts_connections(LOCAL_POSTGRES_URL) else None


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextlib.contextmanager
def temporary_database(server_url: str, prefix: str = "reference_arch_test") -> Iterator[str]:
    """A database created on ``server_url`` for the block (its URL), dropped after it."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(server_url, name)
        finally:
            with admin.cursor() as cur:  # WITH (FORCE): a pooled connection may still be open
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()
