"""The library's recorders, extended with the hub's key index and position look-ups.

This is the one module of `hub/` that speaks SQL (`hub/pg_arrays.py` only encodes its array
parameters). The key index (`hub_keys`) holds one row per source key and per identity,
written in the same transaction as the events: on SQLite through the recorder's own
`_insert_events` hook (the one the library uses for tracking records), on PostgreSQL in the
one statement of a batch's write (`insert_events`). Its primary key makes the store itself
refuse a second touchpoint for one source key and a second customer for one identity, across
threads and processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.persistence import OperationalError as StoreOperationalError
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from eventsourcing.utils import retry
from psycopg import InterfaceError, OperationalError
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

from hub.key_store import SQLITE_TABLES, PostgresKeyTable, SQLiteKeyTable, postgres_tables
from hub.pg_arrays import ByteaArray, Int8Array, TextArray, UUIDArray
from hub.shred import new_key


def creating_tables(recorder: object) -> AbstractContextManager[None]:
    """The store's schema lock while tables are created beside the recorder's own (PostgreSQL:
    processes starting together race on CREATE statements); SQLite's one writer needs none."""
    lock = getattr(recorder, "schema_lock", None)
    return lock() if lock is not None else nullcontext()


KeyRow = tuple[str, str, int | None]  # (key, owner, version)
KeyOwner = tuple[str, int | None]  # (owner, version)
SCHEMA_LOCK = 0x6875625F736368  # advisory lock id held while creating tables
MAX_POSITION = 2**63 - 1  # past the last notification id (both stores' ids are 64-bit)


ScanRow = tuple[int, str, int, str, bytes]  # position, stream id, version, topic, stored state


class HubRecorder(Protocol):
    """What the application needs of its recorder beyond the library's interface."""

    snapshots_table: str | None  # where the application's snapshots are, once it takes them

    def lookup_keys(self, keys: Iterable[str]) -> dict[str, tuple[str, int | None]]: ...

    def lookup_owners(self, keys: Iterable[str]) -> tuple[dict[str, KeyOwner], dict[str, int]]: ...

    def positions(self, events: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]: ...

    def stream(self, originator_id: UUID) -> list[Notification]: ...

    def select_streams(self, after: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]: ...

    def latest_snapshots(self, originator_ids: Iterable[UUID]) -> dict[UUID, StoredEvent]: ...

    def scan_streams(self, after: tuple[str, int] | None, limit: int) -> list[Notification]: ...

    def scan_rows(self, page: int) -> Iterator[list[ScanRow]]: ...

    def select_rows(self, start: int, limit: int, stop: int | None = None) -> list[ScanRow]: ...

    def scan_source_keys(self, page: int) -> Iterator[list[tuple[str, int, str]]]: ...

    def orphan_keys(self, owner: str | None = None) -> list[tuple[str, str, int]]: ...

    def customer_keys(self, customers: Iterable[str], create: bool) -> dict[str, bytes | None]: ...

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]: ...

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]: ...


def _notifications(rows: Iterable[Any]) -> list[Notification]:
    """SQLite rows of (rowid, originator_id, originator_version, topic, state)."""
    return [
        Notification(
            id=row["rowid"],
            originator_id=UUID(row["originator_id"]),
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=bytes(row["state"]),
        )
        for row in rows
    ]


class HubSQLiteRecorder(SQLiteKeyTable, SQLiteApplicationRecorder):
    """SQLite recorder with the key index."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)
        self.snapshots_table: str | None = None  # set by the application when it snapshots

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS hub_keys ("
            "key TEXT PRIMARY KEY, owner TEXT NOT NULL, version INTEGER) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS hub_customer_keys ("
            "customer TEXT PRIMARY KEY, key BLOB, erased_at TEXT) WITHOUT ROWID",
            *SQLITE_TABLES,
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        keys: list[KeyRow] = kwargs.get("hub_keys") or []
        if keys:
            c.executemany("INSERT INTO hub_keys (key, owner, version) VALUES (?, ?, ?)", keys)
        new_keys: dict[str, bytes] = kwargs.get("hub_new_keys") or {}
        if new_keys:
            # New customers' keys, committed with their first events (one commit, not two).
            c.executemany(
                "INSERT INTO hub_customer_keys (customer, key) VALUES (?, ?)", new_keys.items()
            )
        for customer in kwargs.get("hub_erase") or ():
            # Shred the key and unlink the identities, in the transaction of the erasure.
            c.execute(
                "INSERT INTO hub_customer_keys (customer, key, erased_at) "
                "VALUES (?, NULL, datetime('now')) ON CONFLICT (customer) "
                "DO UPDATE SET key = NULL, erased_at = excluded.erased_at",
                (customer,),
            )
            c.execute("DELETE FROM hub_keys WHERE owner = ? AND version IS NULL", (customer,))
            if self.snapshots_table:
                # Sealed anyway; gone, so nothing of the customer outlives the key.
                c.execute(
                    f"DELETE FROM {self.snapshots_table} WHERE originator_id = ?",
                    (UUID(customer).hex,),
                )
        return super()._insert_events(c, stored_events, **kwargs)

    def latest_snapshots(self, originator_ids: Iterable[UUID]) -> dict[UUID, StoredEvent]:
        """The newest snapshot of each stream that has one."""
        wanted = [i.hex for i in set(originator_ids)]
        found: dict[UUID, StoredEvent] = {}
        if not self.snapshots_table or not wanted:
            return found
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                # SQLite takes the bare columns from the row holding the max().
                c.execute(
                    "SELECT originator_id, max(originator_version) AS version, topic, state "
                    f"FROM {self.snapshots_table} WHERE originator_id IN ({marks}) "
                    "GROUP BY originator_id",
                    chunk,
                )
                for row in c.fetchall():
                    stream = UUID(row["originator_id"])
                    found[stream] = StoredEvent(stream, row["version"], row["topic"], row["state"])
        return found

    def customer_keys(self, customers: Iterable[str], create: bool) -> dict[str, bytes | None]:
        wanted = list(set(customers))
        found: dict[str, bytes | None] = {}
        with self.datastore.transaction(commit=create) as c:
            if create:
                c.executemany(
                    "INSERT OR IGNORE INTO hub_customer_keys (customer, key) VALUES (?, ?)",
                    [(customer, new_key()) for customer in wanted],
                )
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                c.execute(
                    f"SELECT customer, key FROM hub_customer_keys WHERE customer IN ({marks})",
                    chunk,
                )
                for row in c.fetchall():
                    found[row["customer"]] = bytes(row["key"]) if row["key"] else None
        return found

    def lookup_keys(self, keys: Iterable[str]) -> dict[str, tuple[str, int | None]]:
        wanted = list(set(keys))
        found: dict[str, tuple[str, int | None]] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                c.execute(f"SELECT key, owner, version FROM hub_keys WHERE key IN ({marks})", chunk)
                for row in c.fetchall():
                    found[row["key"]] = (row["owner"], row["version"])
        return found

    def lookup_owners(self, keys: Iterable[str]) -> tuple[dict[str, KeyOwner], dict[str, int]]:
        """The keys' rows, and the current version of each customer an identity points at."""
        wanted = list(set(keys))
        found: dict[str, KeyOwner] = {}
        heads: dict[str, int] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                c.execute(
                    "SELECT k.key, k.owner, k.version, CASE WHEN k.version IS NULL THEN "
                    f"(SELECT max(e.originator_version) FROM {self.events_table_name} e "
                    "WHERE e.originator_id = replace(k.owner, '-', '')) END AS head "
                    f"FROM hub_keys k WHERE k.key IN ({marks})",
                    chunk,
                )
                for row in c.fetchall():
                    found[row["key"]] = (row["owner"], row["version"])
                    if row["head"] is not None:
                        heads[row["owner"]] = row["head"]
        return found, heads

    def positions(self, events: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        found = {}
        with self.datastore.transaction(commit=False) as c:
            for owner, version in set(events):
                c.execute(
                    f"SELECT rowid FROM {self.events_table_name} "
                    "WHERE originator_id = ? AND originator_version = ?",
                    (UUID(owner).hex, version),
                )
                row = c.fetchone()
                if row is not None:
                    found[(owner, version)] = row[0]
        return found

    def stream(self, originator_id: UUID) -> list[Notification]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} WHERE originator_id = ? "
                "ORDER BY originator_version",
                (originator_id.hex,),
            )
            return _notifications(c.fetchall())

    def select_streams(self, after: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        """The stored events of many streams after a version each (0: all), in version order."""
        wanted = list(after.items())
        found: dict[UUID, list[StoredEvent]] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(wanted), 400):
                chunk = wanted[start : start + 400]
                pairs = " OR ".join("(originator_id = ? AND originator_version > ?)" for _ in chunk)
                c.execute(
                    "SELECT originator_id, originator_version, topic, state "
                    f"FROM {self.events_table_name} WHERE {pairs} "
                    "ORDER BY originator_id, originator_version",
                    [value for stream, version in chunk for value in (stream.hex, version)],
                )
                for row in c.fetchall():
                    stream = UUID(row["originator_id"])
                    found.setdefault(stream, []).append(
                        StoredEvent(stream, row["originator_version"], row["topic"], row["state"])
                    )
        return found

    def scan_streams(self, after: tuple[str, int] | None, limit: int) -> list[Notification]:
        """Events stream by stream, each in version order, after (stream, version)."""
        where = ""
        params: list[Any] = [limit]
        if after is not None:
            where = "WHERE (originator_id, originator_version) > (?, ?) "
            params = [UUID(after[0]).hex, after[1], limit]
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} {where}"
                "ORDER BY originator_id, originator_version LIMIT ?",
                params,
            )
            return _notifications(c.fetchall())

    def select_rows(self, start: int, limit: int, stop: int | None = None) -> list[ScanRow]:
        """The log from position `start` (up to `stop`, both included) as plain rows, at most
        `limit`: what `select_notifications` gives, without an object per event."""
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.execute(
                f"SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} WHERE rowid >= ? AND rowid <= ? "
                "ORDER BY rowid LIMIT ?",
                (start, stop if stop is not None else MAX_POSITION, limit),
            )
            return [
                (row[0], str(UUID(row[1])), row[2], row[3], bytes(row[4]))
                for row in cursor.fetchall()
            ]

    def scan_rows(self, page: int) -> Iterator[list[ScanRow]]:
        """Every event as a plain row, stream by stream in version order, a page at a time:
        one query read in one snapshot, no objects per event (verification reads millions)."""
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.execute(
                f"SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} ORDER BY originator_id, originator_version"
            )
            while rows := cursor.fetchmany(page):
                yield [(row[0], str(UUID(row[1])), row[2], row[3], bytes(row[4])) for row in rows]

    def scan_source_keys(self, page: int) -> Iterator[list[tuple[str, int, str]]]:
        """Every source-key record as (owner, version, key), in the order of `scan_rows`."""
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.execute(
                "SELECT owner, version, key FROM hub_keys WHERE version IS NOT NULL "
                "ORDER BY owner, version"
            )
            while rows := cursor.fetchmany(page):
                yield [tuple(row) for row in rows]

    def orphan_keys(self, owner: str | None = None) -> list[tuple[str, str, int]]:
        """Source-key records whose event is not in the store."""
        mine, params = ("AND k.owner = ? ", [owner]) if owner else ("", [])
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT k.key, k.owner, k.version FROM hub_keys k "
                f"WHERE k.version IS NOT NULL {mine}AND NOT EXISTS (SELECT 1 FROM "
                f"{self.events_table_name} e WHERE e.originator_id = replace(k.owner, '-', '') "
                "AND e.originator_version = k.version)",
                params,
            )
            return [(row["key"], row["owner"], row["version"]) for row in c.fetchall()]


class HubPostgresRecorder(PostgresKeyTable, PostgresApplicationRecorder):
    """PostgreSQL recorder with the key index."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.snapshots_table: str | None = None  # set by the application when it snapshots
        schema = Identifier(self.datastore.schema)
        self.keys_table = Identifier(f"{events_table_name.removesuffix('_events')}_keys")
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{keys} ("
                "key text PRIMARY KEY, owner text NOT NULL, version bigint)"
            ).format(schema=schema, keys=self.keys_table)
        )
        self.customer_keys_table = Identifier(
            f"{events_table_name.removesuffix('_events')}_customer_keys"
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
                "customer text PRIMARY KEY, key bytea, erased_at timestamptz)"
            ).format(schema=schema, table=self.customer_keys_table)
        )
        self.sql_create_statements.extend(
            postgres_tables(self.datastore.schema, events_table_name.removesuffix("_events"))
        )
        # Parameters as binary arrays (`%b`): bytes go over as they are, not hex-escaped text.
        # The statements every batch runs are kept as bytes (`as_bytes(None)`: identifiers
        # quoted without a connection): psycopg renders a composed statement again on every
        # execute (measured: 31 µs of a one-touchpoint transaction's 737 µs of client CPU).
        self._select_keys = (
            SQL("SELECT key, owner, version FROM {schema}.{keys} WHERE key = ANY(%b::text[])")
            .format(schema=schema, keys=self.keys_table)
            .as_bytes(None)
        )
        events = Identifier(events_table_name)
        # With each identity, the version of its customer's stream: a cached customer at that
        # version is current, and needs no read of its events.
        self._select_owners = (
            SQL(
                "SELECT k.key, k.owner, k.version, CASE WHEN k.version IS NULL THEN "
                "(SELECT max(e.originator_version) FROM {schema}.{events} e "
                "WHERE e.originator_id = k.owner::uuid) END FROM {schema}.{keys} k "
                "WHERE k.key = ANY(%b::text[])"
            )
            .format(schema=schema, events=events, keys=self.keys_table)
            .as_bytes(None)
        )
        # The whole write of a batch as one statement, in its own transaction (the pool's
        # connections are in autocommit; an erasure adds its deletions in a transaction): the
        # library's table lock and notification, the events (their notification ids returned
        # in order), the key rows and new customers' keys. One round trip and one statement
        # for psycopg to prepare, convert and send
        # instead of a pipeline of eight (BEGIN to COMMIT): a one-touchpoint transaction's
        # client CPU went from 1,322 to 737 µs (measured), a cost the group commit pays once
        # per batch of concurrent requests.
        self._record_function = Identifier(f"{events_table_name.removesuffix('_events')}_record")
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}("
                "ids {id_type}[], versions bigint[], topics text[], states bytea[], "
                "keys text[], owners text[], key_versions bigint[], "
                "customers text[], customer_keys bytea[]) "
                "RETURNS SETOF bigint LANGUAGE plpgsql AS $body$ BEGIN "
                "SET LOCAL lock_timeout = '{lock_timeout}s'; "
                "LOCK TABLE {schema}.{events} IN EXCLUSIVE MODE; "
                "NOTIFY {channel}; "
                "RETURN QUERY INSERT INTO {schema}.{events} "
                "(originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest(ids, versions, topics, states) RETURNING notification_id; "
                "INSERT INTO {schema}.{keys} (key, owner, version) "
                "SELECT * FROM unnest(keys, owners, key_versions); "
                "INSERT INTO {schema}.{customer_keys} (customer, key) "
                "SELECT * FROM unnest(customers, customer_keys); "
                "END $body$"
            ).format(
                schema=schema,
                function=self._record_function,
                id_type=Identifier(self.datastore.originator_id_type),
                lock_timeout=self.datastore.lock_timeout,
                events=events,
                channel=Identifier(self.channel_name),
                keys=self.keys_table,
                customer_keys=self.customer_keys_table,
            )
        )
        self._record = (
            SQL(
                "SELECT * FROM {schema}.{function}("
                "%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[], "
                "%b::text[], %b::text[], %b::bigint[], %b::text[], %b::bytea[])"
            )
            .format(
                schema=schema,
                function=self._record_function,
                id_type=Identifier(self.datastore.originator_id_type),
            )
            .as_bytes(None)
        )
        # Both reads below join a list of (stream, version) to the events laterally, behind
        # `OFFSET 0` (which keeps PostgreSQL from flattening the subquery into a plain join):
        # one range of the primary key per stream, whatever the table's statistics say. As a
        # plain join, a young table's stale statistics made PostgreSQL hash it against a
        # sequential scan of every event: 2.6 ms a call against 0.5 under `bench/http.py`
        # with two server processes, where each refresh of a customer the other process had
        # written read the whole table.
        self._select_positions = (
            SQL(
                "SELECT e.originator_id, e.originator_version, e.notification_id "
                "FROM unnest(%s::uuid[], %s::bigint[]) AS w(id, v) CROSS JOIN LATERAL ("
                "SELECT originator_id, originator_version, notification_id FROM {schema}.{events} "
                "WHERE originator_id = w.id AND originator_version = w.v OFFSET 0) e"
            )
            .format(schema=schema, events=events)
            .as_bytes(None)
        )
        self._select_streams = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state "
            "FROM unnest(%b::uuid[], %b::bigint[]) AS w(id, v) CROSS JOIN LATERAL ("
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{events} "
            "WHERE originator_id = w.id AND originator_version > w.v OFFSET 0) e "
            "ORDER BY e.originator_id, e.originator_version"
        ).format(schema=schema, events=events)
        self._select_rows = SQL(
            "SELECT notification_id, originator_id::text, originator_version, topic, state "
            "FROM {schema}.{events} WHERE notification_id >= %s AND notification_id <= %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(schema=schema, events=events)
        self._select_stream = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{events} WHERE originator_id = %s ORDER BY originator_version"
        ).format(schema=schema, events=events)

    def create_table(self) -> None:
        with self.schema_lock():
            super().create_table()

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        """Processes starting together race on the library's CREATE statements (PostgreSQL
        answers "tuple concurrently updated" or a duplicate type): one creates, others wait."""
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """A batch's events and key rows in one statement (`_record`), and an erasure's
        deletions with them in one transaction."""
        if not stored_events:
            return super().insert_events(stored_events, **kwargs)
        return self._record_batch(stored_events, **kwargs)

    # As the library's own insert retries a lost connection.
    @retry((StoreInterfaceError, StoreOperationalError), max_attempts=10, wait=0.2)
    def _record_batch(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        keys: list[KeyRow] = kwargs.get("hub_keys") or []
        new_keys: dict[str, bytes] = kwargs.get("hub_new_keys") or {}
        erased = list(kwargs.get("hub_erase") or ())
        with (
            self.datastore.get_connection() as conn,
            conn.transaction() if erased else nullcontext(),
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            if not erased and not conn.autocommit:
                # The statement commits by itself only in autocommit (the pool sets it): in a
                # transaction left open, the notification ids would go out uncommitted.
                raise RuntimeError("the record function needs an autocommit connection")
            curs.execute(
                self._record,
                (
                    UUIDArray(e.originator_id for e in stored_events),
                    Int8Array(e.originator_version for e in stored_events),
                    TextArray(e.topic for e in stored_events),
                    ByteaArray(e.state for e in stored_events),
                    TextArray(k[0] for k in keys),
                    TextArray(k[1] for k in keys),
                    Int8Array(k[2] for k in keys),
                    TextArray(new_keys),
                    ByteaArray(new_keys.values()),
                ),
                prepare=True,
            )
            notification_ids = [row[0] for row in curs.fetchall()]
            if erased:
                self._erase(curs, erased)
            return notification_ids

    def _erase(self, curs: Any, erased: list[str]) -> None:
        """Shred the customers' keys and unlink their identities, in the transaction that
        records their erasure."""
        schema = Identifier(self.datastore.schema)
        if self.snapshots_table:
            # Sealed anyway; gone, so nothing of the customer outlives the key.
            curs.execute(
                SQL("DELETE FROM {schema}.{table} WHERE originator_id = ANY(%s)").format(
                    schema=schema, table=Identifier(self.snapshots_table)
                ),
                ([UUID(customer) for customer in erased],),
            )
        curs.execute(
            SQL(
                "INSERT INTO {schema}.{table} (customer, key, erased_at) "
                "SELECT unnest(%s::text[]), NULL, now() ON CONFLICT (customer) "
                "DO UPDATE SET key = NULL, erased_at = excluded.erased_at"
            ).format(schema=schema, table=self.customer_keys_table),
            (erased,),
        )
        curs.execute(
            SQL("DELETE FROM {schema}.{keys} WHERE owner = ANY(%s) AND version IS NULL").format(
                schema=schema, keys=self.keys_table
            ),
            (erased,),
        )

    def customer_keys(self, customers: Iterable[str], create: bool) -> dict[str, bytes | None]:
        wanted = list(set(customers))
        if not wanted:
            return {}
        schema = Identifier(self.datastore.schema)
        with self.datastore.transaction(commit=create) as curs:
            if create:
                curs.execute(
                    SQL(
                        "INSERT INTO {schema}.{table} (customer, key) "
                        "SELECT * FROM unnest(%s::text[], %s::bytea[]) ON CONFLICT DO NOTHING"
                    ).format(schema=schema, table=self.customer_keys_table),
                    (wanted, [new_key() for _ in wanted]),
                )
            curs.execute(
                SQL("SELECT customer, key FROM {schema}.{table} WHERE customer = ANY(%s)").format(
                    schema=schema, table=self.customer_keys_table
                ),
                (wanted,),
            )
            return {
                row["customer"]: bytes(row["key"]) if row["key"] else None
                for row in curs.fetchall()
            }

    def lookup_keys(self, keys: Iterable[str]) -> dict[str, tuple[str, int | None]]:
        wanted = list(set(keys))
        if not wanted:
            return {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_keys, (TextArray(wanted),))
            return {row["key"]: (row["owner"], row["version"]) for row in curs.fetchall()}

    def lookup_owners(self, keys: Iterable[str]) -> tuple[dict[str, KeyOwner], dict[str, int]]:
        """The keys' rows, and the current version of each customer an identity points at."""
        wanted = list(set(keys))
        if not wanted:
            return {}, {}
        found: dict[str, KeyOwner] = {}
        heads: dict[str, int] = {}
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._select_owners, (TextArray(wanted),))
            for key, owner, version, head in curs.fetchall():
                found[key] = (owner, version)
                if head is not None:
                    heads[owner] = head
        return found, heads

    def positions(self, events: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        wanted = list(set(events))
        if not wanted:
            return {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                self._select_positions,
                ([UUID(owner) for owner, _ in wanted], [version for _, version in wanted]),
            )
            return {
                (str(row["originator_id"]), row["originator_version"]): row["notification_id"]
                for row in curs.fetchall()
            }

    def stream(self, originator_id: UUID) -> list[Notification]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_stream, (originator_id,))
            return [
                Notification(
                    id=row["notification_id"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    def select_streams(self, after: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        """The stored events of many streams after a version each (0: all), in version order."""
        found: dict[UUID, list[StoredEvent]] = {}
        if not after:
            return found
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._select_streams, (list(after), list(after.values())), binary=True)
            for stream, version, topic, state in curs.fetchall():
                found.setdefault(stream, []).append(StoredEvent(stream, version, topic, state))
        return found

    def latest_snapshots(self, originator_ids: Iterable[UUID]) -> dict[UUID, StoredEvent]:
        """The newest snapshot of each stream that has one."""
        wanted = list(set(originator_ids))
        if not self.snapshots_table or not wanted:
            return {}
        query = SQL(
            "SELECT DISTINCT ON (originator_id) originator_id, originator_version, topic, state "
            "FROM {schema}.{table} WHERE originator_id = ANY(%b) "
            "ORDER BY originator_id, originator_version DESC"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.snapshots_table))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(query, (wanted,), binary=True)
            return {row[0]: StoredEvent(*row) for row in curs.fetchall()}

    def scan_streams(self, after: tuple[str, int] | None, limit: int) -> list[Notification]:
        """Events stream by stream, each in version order, after (stream, version)."""
        where = SQL("")
        params: list[Any] = [limit]
        if after is not None:
            where = SQL("WHERE (originator_id, originator_version) > (%s::uuid, %s) ")
            params = [after[0], after[1], limit]
        query = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{events} {where}ORDER BY originator_id, originator_version LIMIT %s"
        ).format(
            schema=Identifier(self.datastore.schema),
            events=Identifier(self.events_table_name),
            where=where,
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(query, params)
            return [
                Notification(
                    id=row["notification_id"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_rows(self, start: int, limit: int, stop: int | None = None) -> list[ScanRow]:
        """The log from position `start` (up to `stop`, both included) as plain rows, at most
        `limit`: what `select_notifications` gives, in binary and without an object per event
        (the projections read every event this way)."""
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as cursor,
        ):
            cursor.execute(
                self._select_rows,
                (start, stop if stop is not None else MAX_POSITION, limit),
                prepare=True,
            )
            return cursor.fetchall()

    def scan_rows(self, page: int) -> Iterator[list[ScanRow]]:
        """Every event as a plain row, stream by stream in version order, a page at a time:
        one server-side cursor in one snapshot, rows in binary (no hex-decoding of the
        stored bytes), no objects per event (verification reads millions)."""
        query = SQL(
            "SELECT notification_id, originator_id::text, originator_version, topic, state "
            "FROM {schema}.{events} ORDER BY originator_id, originator_version"
        ).format(
            schema=Identifier(self.datastore.schema), events=Identifier(self.events_table_name)
        )
        return self._scan(query, "hub_scan_rows", page)

    def scan_source_keys(self, page: int) -> Iterator[list[tuple[str, int, str]]]:
        """Every source-key record as (owner, version, key), in the order of `scan_rows`
        (a stream id's text in byte order is its uuid's order)."""
        query = SQL(
            "SELECT owner, version, key FROM {schema}.{keys} WHERE version IS NOT NULL "
            'ORDER BY owner COLLATE "C", version'
        ).format(schema=Identifier(self.datastore.schema), keys=self.keys_table)
        return self._scan(query, "hub_scan_keys", page)

    def _scan(self, query: Composed, name: str, page: int) -> Iterator[list[Any]]:
        """The rows of `query` a page at a time, through one server-side binary cursor."""
        with (
            self.datastore.transaction(commit=False) as c,
            c.connection.cursor(name=name, row_factory=tuple_row, binary=True) as cursor,
        ):
            # Long reads pause between pages while the caller works: lift the library's
            # idle-in-transaction timeout (5 s) for this read only.
            c.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            cursor.execute(query)
            while rows := cursor.fetchmany(page):
                yield rows

    def orphan_keys(self, owner: str | None = None) -> list[tuple[str, str, int]]:
        """Source-key records whose event is not in the store."""
        mine, params = (SQL("AND k.owner = %s "), [owner]) if owner else (SQL(""), [])
        query = SQL(
            "SELECT k.key, k.owner, k.version FROM {schema}.{keys} k "
            "WHERE k.version IS NOT NULL {mine}AND NOT EXISTS (SELECT 1 FROM "
            "{schema}.{events} e WHERE e.originator_id = k.owner::uuid "
            "AND e.originator_version = k.version)"
        ).format(
            schema=Identifier(self.datastore.schema),
            keys=self.keys_table,
            events=Identifier(self.events_table_name),
            mine=mine,
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(query, params)
            return [(row["key"], row["owner"], row["version"]) for row in curs.fetchall()]
