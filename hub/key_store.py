"""The API key tables beside the recorder's, on SQLite and PostgreSQL (mixed into the
recorders of hub/store.py): key records by HMAC digest, and the store's HMAC secret."""

from __future__ import annotations

from typing import Any

from psycopg.sql import SQL, Composed, Identifier

from hub.keys import ApiKey

COLUMNS = "id, role, name, created_at, revoked_at"


def _key(row: Any) -> ApiKey:
    return ApiKey(row["id"], row["role"], row["name"], row["created_at"], row["revoked_at"])


SQLITE_TABLES = [
    "CREATE TABLE IF NOT EXISTS hub_api_keys (id TEXT PRIMARY KEY, digest TEXT NOT NULL "
    "UNIQUE, role TEXT NOT NULL, name TEXT, created_at TEXT NOT NULL, revoked_at TEXT)",
    "CREATE TABLE IF NOT EXISTS hub_api_secret ("
    "id INTEGER PRIMARY KEY CHECK (id = 1), secret BLOB NOT NULL)",
]


def postgres_tables(schema: str, prefix: str) -> list[Composed]:
    names = {"schema": Identifier(schema), **_pg_names(prefix)}
    return [
        SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{keys} (id text PRIMARY KEY, digest text NOT "
            "NULL UNIQUE, role text NOT NULL, name text, created_at text NOT NULL, revoked_at text)"
        ).format(**names),
        SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{secret} ("
            "id int PRIMARY KEY CHECK (id = 1), secret bytea NOT NULL)"
        ).format(**names),
    ]


def _pg_names(prefix: str) -> dict[str, Identifier]:
    return {"keys": Identifier(f"{prefix}_api_keys"), "secret": Identifier(f"{prefix}_api_secret")}


class SQLiteKeyTable:
    """API keys on SQLite (mixed into the SQLite recorder)."""

    datastore: Any

    def api_key_secret(self, candidate: bytes) -> bytes:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT OR IGNORE INTO hub_api_secret (id, secret) VALUES (1, ?)", (candidate,)
            )
            c.execute("SELECT secret FROM hub_api_secret WHERE id = 1")
            return bytes(c.fetchone()["secret"])

    def insert_api_key(self, key: ApiKey, digest: str) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"INSERT INTO hub_api_keys (digest, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (digest, key.id, key.role, key.name, key.created_at, key.revoked_at),
            )

    def select_api_keys(self) -> list[ApiKey]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT {COLUMNS} FROM hub_api_keys ORDER BY created_at, id")
            return [_key(row) for row in c.fetchall()]

    def find_api_key(self, digest: str) -> ApiKey | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT {COLUMNS} FROM hub_api_keys WHERE digest = ?", (digest,))
            row = c.fetchone()
            return _key(row) if row else None

    def revoke_api_key(self, key_id: str, at: str) -> ApiKey | None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "UPDATE hub_api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                (at, key_id),
            )
            c.execute(f"SELECT {COLUMNS} FROM hub_api_keys WHERE id = ?", (key_id,))
            row = c.fetchone()
            return _key(row) if row else None

    def count_api_keys(self) -> tuple[int, int]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT count(*), count(*) - count(revoked_at) FROM hub_api_keys")
            total, active = c.fetchone()
            return int(total), int(active)


class PostgresKeyTable:
    """API keys on PostgreSQL (mixed into the PostgreSQL recorder)."""

    datastore: Any
    events_table_name: str

    def _names(self) -> dict[str, Identifier]:
        prefix = self.events_table_name.removesuffix("_events")
        return {"schema": Identifier(self.datastore.schema), **_pg_names(prefix)}

    def _run(self, query: str, params: tuple[Any, ...], commit: bool = False) -> list[Any]:
        with self.datastore.transaction(commit=commit) as curs:
            curs.execute(SQL(query).format(**self._names()), params)  # type: ignore[arg-type]
            return list(curs.fetchall()) if curs.description else []

    def api_key_secret(self, candidate: bytes) -> bytes:
        self._run(
            "INSERT INTO {schema}.{secret} (id, secret) VALUES (1, %s) ON CONFLICT DO NOTHING",
            (candidate,),
            commit=True,
        )
        (row,) = self._run("SELECT secret FROM {schema}.{secret} WHERE id = 1", ())
        return bytes(row["secret"])

    def insert_api_key(self, key: ApiKey, digest: str) -> None:
        self._run(
            f"INSERT INTO {{schema}}.{{keys}} (digest, {COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
            (digest, key.id, key.role, key.name, key.created_at, key.revoked_at),
            commit=True,
        )

    def select_api_keys(self) -> list[ApiKey]:
        rows = self._run(f"SELECT {COLUMNS} FROM {{schema}}.{{keys}} ORDER BY created_at, id", ())
        return [_key(row) for row in rows]

    def find_api_key(self, digest: str) -> ApiKey | None:
        rows = self._run(f"SELECT {COLUMNS} FROM {{schema}}.{{keys}} WHERE digest = %s", (digest,))
        return _key(rows[0]) if rows else None

    def revoke_api_key(self, key_id: str, at: str) -> ApiKey | None:
        rows = self._run(
            "UPDATE {schema}.{keys} SET revoked_at = coalesce(revoked_at, %s) WHERE id = %s "
            f"RETURNING {COLUMNS}",
            (at, key_id),
            commit=True,
        )
        return _key(rows[0]) if rows else None

    def count_api_keys(self) -> tuple[int, int]:
        (row,) = self._run(
            "SELECT count(*) AS total, count(*) - count(revoked_at) AS active FROM {schema}.{keys}",
            (),
        )
        return int(row["total"]), int(row["active"])
