"""(Not a bench: a helper, hence the underscore that `python -m bench` skips.) A fresh
PostgreSQL database for one bench run, created and dropped (several people may
bench on one server at once, so its name is unique)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import psycopg
from psycopg import sql

PG_HOST = os.environ.get("HUB_BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("HUB_BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("HUB_BENCH_PG_USER", "postgres")
# Touchpoints in a hub store: source keys pointing at an event.
STORED_TOUCHPOINTS_SQL = "SELECT count(*) FROM hub_keys WHERE version IS NOT NULL"


def create_database(prefix: str = "hub_bench") -> str:
    """A new database named `<prefix>_<random>`; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_database(url: str) -> None:
    """Drop the database of `url` (one `create_database` made), sessions and all."""
    name = url.rpartition("/")[2]
    with _admin() as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


class ScratchDatabase:
    def __init__(self, prefix: str = "hub_bench") -> None:
        self.url = create_database(prefix)
        self.name = self.url.rpartition("/")[2]

    def close(self) -> None:
        drop_database(self.url)


def _admin() -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    )
