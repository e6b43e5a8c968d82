"""The replay check (`hub verify --projections`): every projection rebuilt from the log into
scratch tables and compared, row by row, with the live views at the same log position.

The scratch tables live beside the store, never in the live views' place: a private schema in
the same PostgreSQL database (dropped afterwards), or a temporary SQLite file. Each view is
rebuilt to exactly the position its live tracking record holds, read in the snapshot the live
rows are read in, so a follower advancing meanwhile is no false alarm. Rows are compared in
key order (byte order on both stores), with a SHA-256 digest of each side's rows per view,
and each differing row is named by its key: `differs` (with the columns), `missing` (the
rebuild has it, the live view does not) or `unexpected` (only the live view has it).
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from psycopg.rows import tuple_row

from projections.base import View, decode_rows
from projections.runner import Projections
from projections.store import Table, Tx

TxFactory = Callable[[], AbstractContextManager[Tx]]
SHOWN = 60  # characters of a differing value shown in a finding


@dataclass
class TableCheck:
    """One view table compared: counts, and the first few differing rows."""

    table: str
    live_rows: int = 0
    rebuilt_rows: int = 0
    differences: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "live_rows": self.live_rows,
            "rebuilt_rows": self.rebuilt_rows,
            "differences": self.differences,
            "examples": self.examples,
        }


@dataclass
class ViewCheck:
    """One projection: the position compared at, both digests, and each table's findings."""

    name: str
    position: int
    live_digest: str = ""
    rebuilt_digest: str = ""
    tables: list[TableCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.live_digest == self.rebuilt_digest and not any(
            t.differences for t in self.tables
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "position": self.position,
            "live_digest": self.live_digest,
            "rebuilt_digest": self.rebuilt_digest,
            "tables": [t.as_dict() for t in self.tables],
        }


@dataclass
class ReplayReport:
    views: list[ViewCheck]
    replayed: int  # notifications read from the log to rebuild the scratch views

    @property
    def ok(self) -> bool:
        return all(view.ok for view in self.views)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "replayed": self.replayed,
            "views": [v.as_dict() for v in self.views],
        }


def check_projections(projections: Projections, examples: int = 5) -> ReplayReport:
    """Rebuild every view in scratch tables to the live positions and compare the rows.

    One snapshot of the live tracking and view tables is held for the whole check, so the
    positions read first are the positions of the rows compared last."""
    with _scratch(projections) as scratch_tx, _snapshot(projections) as live:
        target = projections._positions(live)
        done = {name: 0 for name in projections.names}
        replayed = _replay(projections, scratch_tx, done, target)
        with scratch_tx() as rebuilt:
            views = [
                _compare_view(view, target[view.name], live, rebuilt, examples)
                for view in projections.views
            ]
    return ReplayReport(views, replayed)


def _replay(
    projections: Projections, scratch_tx: TxFactory, done: dict[str, int], target: dict[str, int]
) -> int:
    """Apply the log to the scratch views, each up to its target position; events read."""
    todo = [name for name in done if done[name] < target[name]]
    if not todo:
        return 0
    position = min(done[name] for name in todo)
    stop = max(target[name] for name in todo)
    read = 0
    while position < stop:
        page = projections.hub.store.select_rows(position + 1, projections.page_size, stop=stop)
        if not page:
            break
        read += len(page)
        last = page[-1][0]
        events = decode_rows(page, projections.hub.shredder)
        with scratch_tx() as tx:
            for view in projections.views:
                at, upto = done[view.name], target[view.name]
                if at >= upto:
                    continue
                chosen = [e for e in events if at < e.position <= upto]
                if chosen:
                    view.apply(tx, chosen)
                done[view.name] = min(last, upto)
        position = last
    for name in todo:  # the log may end (or hold only snapshots) before a target
        done[name] = max(done[name], target[name])
    return read


# -- comparing ----------------------------------------------------------------------------


def _compare_view(view: View, position: int, live: Tx, rebuilt: Tx, examples: int) -> ViewCheck:
    check = ViewCheck(view.name, position)
    live_digest, rebuilt_digest = hashlib.sha256(), hashlib.sha256()
    for table in view.tables:
        found = TableCheck(table.name)
        _compare_table(
            table, _rows(live, table), _rows(rebuilt, table), found, examples,
            live_digest, rebuilt_digest,
        )  # fmt: skip
        check.tables.append(found)
    check.live_digest = live_digest.hexdigest()
    check.rebuilt_digest = rebuilt_digest.hexdigest()
    return check


def _encode(row: Sequence[Any]) -> bytes:
    return orjson.dumps(list(row), default=str)


def _compare_table(
    table: Table,
    live: Iterator[tuple[Any, ...]],
    rebuilt: Iterator[tuple[Any, ...]],
    found: TableCheck,
    examples: int,
    live_digest: Any,
    rebuilt_digest: Any,
) -> None:
    """Merge both sides in key order: equal keys compare their rows, a lone key is named."""
    names = table.column_names
    at = [names.index(k) for k in table.key]
    separator = f"\n{table.name}\n".encode()
    live_digest.update(separator)
    rebuilt_digest.update(separator)

    def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(row[i] for i in at)

    def name(kind: str, row: tuple[Any, ...], **more: Any) -> None:
        found.differences += 1
        if len(found.examples) < examples:
            keys = {k: row[i] for k, i in zip(table.key, at, strict=True)}
            found.examples.append({"kind": kind, "key": keys, **more})

    a, b = next(live, None), next(rebuilt, None)
    while a is not None or b is not None:
        if b is None or (a is not None and key(a) < key(b)):
            assert a is not None
            found.live_rows += 1
            live_digest.update(_encode(a))
            name("unexpected", a)
            a = next(live, None)
        elif a is None or key(b) < key(a):
            found.rebuilt_rows += 1
            rebuilt_digest.update(_encode(b))
            name("missing", b)
            b = next(rebuilt, None)
        else:
            found.live_rows += 1
            found.rebuilt_rows += 1
            encoded_a, encoded_b = _encode(a), _encode(b)
            live_digest.update(encoded_a)
            rebuilt_digest.update(encoded_b)
            if encoded_a != encoded_b:
                columns = {
                    column: {"live": _shown(x), "rebuilt": _shown(y)}
                    for column, x, y in zip(names, a, b, strict=True)
                    if _encode([x]) != _encode([y])
                }
                name("differs", a, columns=columns)
            a, b = next(live, None), next(rebuilt, None)


def _shown(value: Any) -> Any:
    if isinstance(value, str) and len(value) > SHOWN:
        return value[:SHOWN] + "…"
    return value


def _rows(tx: Tx, table: Table) -> Iterator[tuple[Any, ...]]:
    """A table's rows in key order by bytes (code points), streamed in batches."""
    types = dict(table.columns)
    if tx.postgres:
        order = ", ".join(f'{k} COLLATE "C"' if types[k] == "text" else k for k in table.key)
        conn = tx.cursor.connection
        cursor = conn.cursor(name=f"replay_{uuid.uuid4().hex[:8]}", row_factory=tuple_row)
    else:
        order = ", ".join(table.key)
        cursor = tx.cursor.connection.cursor()
    cursor.execute(
        f"SELECT {', '.join(table.column_names)} FROM {tx.prefix}{table.name} ORDER BY {order}"
    )
    try:
        while batch := cursor.fetchmany(1000):
            for row in batch:
                yield tuple(row)
    finally:
        cursor.close()


# -- where the scratch views live -------------------------------------------------------


@contextmanager
def _snapshot(projections: Projections) -> Iterator[Tx]:
    """One consistent read of the live tracking and view tables."""
    with projections.recorder.tx(commit=False) as tx:
        if tx.postgres:
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            # held while the scratch views are rebuilt: no idle-in-transaction timeout
            tx.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        yield tx


@contextmanager
def _scratch(projections: Projections) -> Iterator[TxFactory]:
    if projections.postgres:
        with _scratch_schema(projections) as factory:
            yield factory
    else:
        with _scratch_file(projections.tables) as factory:
            yield factory


@contextmanager
def _scratch_schema(projections: Projections) -> Iterator[TxFactory]:
    """A private schema in the live database, dropped at the end."""
    datastore = projections.recorder.datastore
    schema = f"hub_replay_{uuid.uuid4().hex[:12]}"
    prefix = f'"{schema}".'
    with datastore.transaction(commit=True) as cursor:
        cursor.execute(f'CREATE SCHEMA "{schema}"')
        for table in projections.tables:
            for statement in table.ddl(True, prefix):
                cursor.execute(statement)

    @contextmanager
    def factory() -> Iterator[Tx]:
        with datastore.transaction(commit=True) as cursor:
            yield Tx(cursor, postgres=True, prefix=prefix)

    try:
        yield factory
    finally:
        with datastore.transaction(commit=True) as cursor:
            cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def _scratch_file(tables: Sequence[Table]) -> Iterator[TxFactory]:
    """A temporary SQLite file (not memory: a large store's views may not fit)."""
    folder = tempfile.mkdtemp(prefix="hub-replay-")
    conn = sqlite3.connect(f"{folder}/views.db", isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    for table in tables:
        for statement in table.ddl(False, ""):
            conn.execute(statement)

    @contextmanager
    def factory() -> Iterator[Tx]:
        cursor = conn.cursor()
        cursor.execute("BEGIN")
        try:
            yield Tx(cursor, postgres=False)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    try:
        yield factory
    finally:
        conn.close()
        shutil.rmtree(folder, ignore_errors=True)
