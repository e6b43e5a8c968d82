"""The write path's binary array parameters (`hub/pg_arrays.py`) arrive in PostgreSQL as the
values they hold: empty arrays, NULLs, non-ASCII text, bytes that are not text."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from hub.pg_arrays import ByteaArray, Int8Array, TextArray, UUIDArray
from tests.conftest import pg_url

CASES: list[tuple[Any, str, list[Any]]] = [
    (UUIDArray, "uuid", [uuid.UUID(int=1), uuid.uuid4()]),
    (UUIDArray, "uuid", [str(uuid.UUID(int=2))]),
    (Int8Array, "bigint", [0, -1, 2**63 - 1, -(2**63), None, 7]),
    (Int8Array, "bigint", [None]),
    (TextArray, "text", ["", "plain", "Zoë 日本 \u2603", "a,b{c}\"d'"]),
    (ByteaArray, "bytea", [b"", b"\x00\xff\x00", bytes(range(256))]),
]


@pytest.fixture(scope="module")
def conn(pg_database: str) -> Any:
    with psycopg.connect(pg_url(pg_database), autocommit=True) as connection:
        yield connection


@pytest.mark.parametrize(("cls", "sql_type", "values"), CASES)
def test_values_arrive_as_they_are(conn: Any, cls: Any, sql_type: str, values: list[Any]) -> None:
    query = f"SELECT %b::{sql_type}[]"  # noqa: S608 - the type is one of this module's
    (got,) = conn.execute(query, (cls(values),)).fetchone()
    expected = [uuid.UUID(str(v)) for v in values] if cls is UUIDArray else values
    assert got == expected


@pytest.mark.parametrize("cls,sql_type", [(c, t) for c, t, _ in CASES])
def test_empty_array(conn: Any, cls: Any, sql_type: str) -> None:
    query = f"SELECT %b::{sql_type}[], cardinality(%b::{sql_type}[])"  # noqa: S608
    assert conn.execute(query, (cls(), cls())).fetchone() == ([], 0)


def test_unnest_keeps_the_order_and_the_nulls(conn: Any) -> None:
    rows = conn.execute(
        "SELECT * FROM unnest(%b::text[], %b::bigint[])",
        (TextArray(["a", "b", "c"]), Int8Array([1, None, 3])),
    ).fetchall()
    assert rows == [("a", 1), ("b", None), ("c", 3)]
