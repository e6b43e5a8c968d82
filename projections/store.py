"""Where projections keep their rows: view tables beside the library's tracking table.

The recorders are the library's tracking recorders (so `max_tracking_id` and `wait` are
theirs), extended with the view tables' DDL. `Tx` wraps one transaction's cursor so a view's
SQL reads the same on SQLite and PostgreSQL: statements use `?` for parameters and `{s}`
before a table name (the PostgreSQL schema), and rows are written in bulk (COPY on PostgreSQL,
`executemany` on SQLite).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.sql import SQL

from hub.store import SCHEMA_LOCK

# Advisory locks (the two-int form) held by whoever writes a view's rows: the first int names
# the projections, the second is the view's stable number (`runner.VIEW_NAMES`). Runners take
# the locks of the views they write in ascending number, so no two of them can deadlock.
PROJECTION_LOCKS = 0x68756276  # "hubv"
SQLITE_TYPES = {"text": "TEXT", "bigint": "INTEGER", "double": "REAL"}
PG_TYPES = {"text": "text", "bigint": "bigint", "double": "double precision"}


@dataclass(frozen=True)
class Table:
    """A view table: columns as (name, type) with type `text`, `bigint` or `double`."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def ddl(self, postgres: bool, prefix: str) -> list[str]:
        types = PG_TYPES if postgres else SQLITE_TYPES
        cols = ", ".join(f"{name} {types[kind]}" for name, kind in self.columns)
        statements = [
            f"CREATE TABLE IF NOT EXISTS {prefix}{self.name} "
            f"({cols}, PRIMARY KEY ({', '.join(self.key)}))"
        ]
        for number, columns in enumerate(self.indexes):
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {self.name}_i{number} "
                f"ON {prefix}{self.name} ({', '.join(columns)})"
            )
        return statements


class Tx:
    """One transaction on the view tables (or a read), in either store's dialect."""

    def __init__(self, cursor: Any, postgres: bool, prefix: str = ""):
        self.library_cursor = cursor  # what the library's recorder methods take
        self.cursor = getattr(cursor, "sqlite_cursor", cursor)
        self.postgres = postgres
        self.prefix = prefix
        # Whether views may use and update what they keep in memory between pages: only in
        # the runner's own transactions on the live tables (not replays or scratch copies).
        self.remember = False
        self._sql: dict[str, str] = {}
        self._staged: set[str] = set()

    def sql(self, statement: str) -> str:
        converted = self._sql.get(statement)
        if converted is None:
            converted = statement.replace("{s}", self.prefix)
            if self.postgres:
                converted = converted.replace("?", "%s")
            self._sql[statement] = converted
        return converted

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        self.cursor.execute(self.sql(statement), params)
        if self.cursor.description is None:
            return []
        return list(self.cursor.fetchall())

    def chunked(
        self, statement: str, values: Sequence[Any], params: Sequence[Any] = ()
    ) -> list[Any]:
        """Run a statement with `IN ({in})` once per chunk of values; all the rows."""
        rows: list[Any] = []
        if self.postgres and values:
            # One array parameter (binary) instead of hundreds of placeholders to parse.
            converted = self.sql(statement.replace("IN ({in})", "= ANY(?)")).replace(
                "= ANY(%s)", "= ANY(%b)", 1
            )
            self.cursor.execute(converted, [list(values), *params])
            return list(self.cursor.fetchall())
        for start in range(0, len(values), 500):
            chunk = list(values[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows += self.execute(statement.replace("{in}", marks), [*chunk, *params])
        return rows

    def insert(self, table: Table, rows: Sequence[Sequence[Any]], on_conflict: str = "") -> None:
        """Insert many rows at once; `on_conflict` is e.g. `(a) DO UPDATE SET b = excluded.b`."""
        if not rows:
            return
        names = ", ".join(table.column_names)
        tail = f" ON CONFLICT {on_conflict}" if on_conflict else ""
        if self.postgres:
            # COPY formats rows in C; bound arrays were dumped element by element in Python.
            target = f"{self.prefix}{table.name}"
            if on_conflict:
                target = self._staging(table)
            with self.cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            if on_conflict:
                self.cursor.execute(
                    f"INSERT INTO {self.prefix}{table.name} ({names}) "
                    f"SELECT {names} FROM {target}{tail}"
                )
                self.cursor.execute(f"TRUNCATE {target}")
        else:
            marks = ", ".join("?" * len(table.column_names))
            self.cursor.executemany(
                f"INSERT INTO {table.name} ({names}) VALUES ({marks}){tail}", rows
            )

    def _staging(self, table: Table) -> str:
        """A temporary table of the connection shaped like `table`, for COPY then upsert."""
        name = f"staging_{table.name}"
        # Once per transaction, not per connection: a rolled-back transaction takes the
        # temporary table it created with it.
        if name not in self._staged:
            types = ", ".join(f"{col} {PG_TYPES[kind]}" for col, kind in table.columns)
            self.cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({types})")
            self._staged.add(name)
        return name

    def upsert(self, table: Table, rows: Sequence[Sequence[Any]]) -> None:
        """Insert or replace whole rows by the table's key (keys must be unique in `rows`)."""
        others = [name for name in table.column_names if name not in table.key]
        sets = ", ".join(f"{name} = excluded.{name}" for name in others)
        self.insert(table, rows, f"({', '.join(table.key)}) DO UPDATE SET {sets}")


class SQLiteViewRecorder(SQLiteTrackingRecorder):
    """The library's SQLite tracking recorder, creating the view tables too."""

    tracking_table = "tracking"

    def __init__(self, datastore: SQLiteDatastore, tables: Sequence[Table]):
        self.tables = list(tables)
        super().__init__(datastore)

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        for table in self.tables:
            statements += table.ddl(False, "")
        return statements

    @contextmanager
    def tx(self, commit: bool) -> Iterator[Tx]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield Tx(cursor, postgres=False)

    def record_tracking(self, tx: Tx, name: str, position: int) -> None:
        self._insert_tracking(tx.library_cursor, Tracking(name, position))

    def missing_tables(self) -> set[str]:
        """The view tables not (yet) in the database."""
        with self.tx(commit=False) as tx:
            rows = tx.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {table.name for table in self.tables} - {row["name"] for row in rows}


class PostgresViewRecorder(PostgresTrackingRecorder):
    """The library's PostgreSQL tracking recorder, creating the view tables too."""

    def __init__(self, datastore: PostgresDatastore, tables: Sequence[Table], tracking_table: str):
        super().__init__(datastore, tracking_table_name=tracking_table)
        self.tables = list(tables)
        self.tracking_table = f'"{datastore.schema}".{tracking_table}'
        self.prefix = f'"{datastore.schema}".'
        for table in self.tables:
            self.sql_create_statements += [SQL(s) for s in table.ddl(True, self.prefix)]  # type: ignore[misc]

    def create_table(self) -> None:
        # Processes starting together would race on CREATE statements: one creates.
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))

    @contextmanager
    def tx(self, commit: bool) -> Iterator[Tx]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield Tx(cursor, postgres=True, prefix=self.prefix)

    def record_tracking(self, tx: Tx, name: str, position: int) -> None:
        self._insert_tracking(tx.library_cursor, Tracking(name, position))

    def missing_tables(self) -> set[str]:
        """The view tables not (yet) in the database."""
        with self.tx(commit=False) as tx:
            rows = tx.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = ?", [self.datastore.schema]
            )
        return {table.name for table in self.tables} - {row["tablename"] for row in rows}


ViewRecorder = SQLiteViewRecorder | PostgresViewRecorder


def view_recorder(datastore: Any, tables: Sequence[Table], app_prefix: str) -> ViewRecorder:
    """The view recorder on the application's own datastore (one pool, one file)."""
    if isinstance(datastore, PostgresDatastore):
        return PostgresViewRecorder(datastore, tables, f"{app_prefix}_tracking")
    return SQLiteViewRecorder(datastore, tables)


@contextmanager
def scratch(tables: Sequence[Table]) -> Iterator[Tx]:
    """A private in-memory SQLite database with the view tables: for replays (as_of)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        for table in tables:
            for statement in table.ddl(False, ""):
                conn.execute(statement)
        yield Tx(conn.cursor(), postgres=False)
    finally:
        conn.close()
