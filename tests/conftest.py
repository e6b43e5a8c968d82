"""Shared fixtures: every store-backed test runs on SQLite and on the real PostgreSQL.

PostgreSQL: one fresh database per test module, one fresh schema per test. With CI=true an
unreachable server fails the run; elsewhere the PostgreSQL cases are skipped with a reason.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from hub.app import Hub
from hub.settings import Settings

PG_HOST = os.environ.get("HUB_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("HUB_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("HUB_TEST_PG_USER", "postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pg_admin() -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=PG_USER,
        dbname="postgres",
        autocommit=True,
        connect_timeout=3,
    )


def require_postgres() -> None:
    try:
        pg_admin().close()
    except psycopg.OperationalError as error:
        if IN_CI:
            pytest.fail(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}: {error}")
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}")


NATS_URL = os.environ.get("HUB_TEST_NATS_URL", "nats://127.0.0.1:4222")


def require_nats() -> str:
    """The test NATS server's URL; with CI=true an unreachable server fails, else skips."""
    from urllib.parse import urlsplit

    url = urlsplit(NATS_URL)
    try:
        socket.create_connection((url.hostname or "127.0.0.1", url.port or 4222), 3).close()
    except OSError as error:
        if IN_CI:
            pytest.fail(f"NATS is not reachable at {NATS_URL}: {error}")
        pytest.skip(f"NATS is not reachable at {NATS_URL}")
    return NATS_URL


@pytest.fixture
def nats_url() -> str:
    """The NATS server (JetStream) the test may use; tests name their own streams."""
    return require_nats()


@pytest.fixture(scope="module")
def pg_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database for this test module, dropped afterwards."""
    require_postgres()
    module = re.sub(r"\W", "_", request.module.__name__.rpartition(".")[2])[:30]
    name = f"hub_t_{module}_{os.getpid()}"
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_url(database: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[dict[str, str]]:
    """The library environment of a fresh, empty store: a SQLite file or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield Settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}").eventsourcing_env()
        return
    database = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url(database), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    env = Settings(database_url=pg_url(database), pool_size=4).eventsourcing_env()
    env["POSTGRES_SCHEMA"] = schema
    yield env
    with psycopg.connect(pg_url(database), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def make_hub(store_env: dict[str, str]) -> Iterator[Callable[..., Hub]]:
    """Build Hub instances on the test's store (several: restarts, second writers)."""
    hubs: list[Hub] = []

    def build(**kwargs: Any) -> Hub:
        hub = Hub(dict(store_env), **kwargs)
        hubs.append(hub)
        return hub

    yield build
    for hub in hubs:
        hub.close()


@pytest.fixture
def hub(make_hub: Callable[..., Hub]) -> Hub:
    return make_hub()
