"""Raw access to a test store, for tampering the way an attacker with database access would,
and the `HUB_*` environment that points a `hub` command at the same store."""

from __future__ import annotations

import sqlite3
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import tuple_row

from hub.app import Hub


def cli_env(store_env: dict[str, str]) -> dict[str, str]:
    """The `HUB_*` variables of a `hub` command on the test's store."""
    if store_env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
        return {"HUB_DATABASE_URL": f"sqlite:///{store_env['SQLITE_DBNAME']}"}
    env = {
        "HUB_DATABASE_URL": (
            f"postgresql://{store_env['POSTGRES_USER']}@{store_env['POSTGRES_HOST']}:"
            f"{store_env['POSTGRES_PORT']}/{store_env['POSTGRES_DBNAME']}"
        ),
        "HUB_POOL_SIZE": "2",
    }
    if store_env.get("POSTGRES_SCHEMA"):
        env["HUB_DATABASE_SCHEMA"] = store_env["POSTGRES_SCHEMA"]
    return env


class RawStore:
    """SQL straight on the store's tables; statements use `{p}` for a parameter."""

    def __init__(self, hub: Hub, store_env: dict[str, str]):
        self.events = hub.recorder.events_table_name  # type: ignore[attr-defined]
        self.sqlite = store_env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
        self.conn: Any
        if self.sqlite:
            self.conn = sqlite3.connect(store_env["SQLITE_DBNAME"], isolation_level=None)
            self.keys = "hub_keys"
            self.p = "?"
        else:
            self.conn = psycopg.connect(
                host=store_env["POSTGRES_HOST"],
                port=store_env["POSTGRES_PORT"],
                user=store_env["POSTGRES_USER"],
                dbname=store_env["POSTGRES_DBNAME"],
                autocommit=True,
                row_factory=tuple_row,
            )
            schema = store_env.get("POSTGRES_SCHEMA") or "public"
            self.conn.execute(f'SET search_path TO "{schema}"')
            self.keys = f"{self.events.removesuffix('_events')}_keys"
            self.p = "%s"

    def stream_id(self, customer_id: str) -> Any:
        return UUID(customer_id).hex if self.sqlite else UUID(customer_id)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        sql = sql.format(p=self.p, events=self.events, keys=self.keys)
        cursor = self.conn.execute(sql, params)
        try:
            return list(cursor.fetchall())
        except (sqlite3.ProgrammingError, psycopg.ProgrammingError):
            return []

    def state(self, customer_id: str, version: int) -> bytes:
        ((state,),) = self.execute(
            "SELECT state FROM {events} WHERE originator_id = {p} AND originator_version = {p}",
            (self.stream_id(customer_id), version),
        )
        return bytes(state)

    def close(self) -> None:
        self.conn.close()
