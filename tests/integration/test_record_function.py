"""PostgreSQL's one-statement write (`hub_record`, `hub/store.py`): a store made before the
function existed gets it when a hub starts, and what it writes reads back as the library's
own insert wrote it: events in order with their notification ids, key rows, customers' keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from hub.app import Accepted, Hub
from tests.factories import touchpoint

# The function is PostgreSQL's: the store of these tests is a PostgreSQL schema only.
pytestmark = pytest.mark.parametrize("store_env", ["postgres"], indirect=True)


@pytest.fixture
def pg_env(store_env: dict[str, str]) -> dict[str, str]:
    return store_env


def _connect(env: dict[str, str]) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=env["POSTGRES_HOST"],
        port=int(env["POSTGRES_PORT"]),
        user=env["POSTGRES_USER"],
        dbname=env["POSTGRES_DBNAME"],
        autocommit=True,
    )


def count(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()  # type: ignore[call-overload]
    assert row is not None
    return int(row[0])


def calls(n: int, tag: str) -> list[Any]:
    return [
        touchpoint(
            source={"channel": "phone", "id": f"{tag}-{i}"},
            customer={"email": f"{tag}.{i % 3}@example.com"},
        )
        for i in range(n)
    ]


def test_a_store_made_before_the_function_gets_it_at_start(
    pg_env: dict[str, str], make_hub: Callable[..., Hub]
) -> None:
    first = make_hub()
    assert all(isinstance(o, Accepted) for o in first.record_batch(calls(3, "before")))
    schema = pg_env["POSTGRES_SCHEMA"]
    with _connect(pg_env) as conn:
        conn.execute(f'DROP FUNCTION "{schema}".hub_record')
    first.close()
    again = make_hub()  # starting creates what is missing
    outcomes = again.record_batch(calls(3, "after"))
    assert all(isinstance(o, Accepted) and not o.duplicate for o in outcomes)
    repeat = again.record_batch(calls(3, "before"))
    assert all(isinstance(o, Accepted) and o.duplicate for o in repeat)


def test_what_it_writes_reads_back_in_order(
    pg_env: dict[str, str], make_hub: Callable[..., Hub]
) -> None:
    hub = make_hub()
    outcomes = [o for o in hub.record_batch(calls(7, "order")) if isinstance(o, Accepted)]
    positions = [o.position for o in outcomes]
    assert len(set(positions)) == 7
    # A batch's events go to the log customer by customer, each customer's in item order.
    for customer in {o.customer_id for o in outcomes}:
        own = [o.position for o in outcomes if o.customer_id == customer]
        assert own == sorted(own)
    schema = pg_env["POSTGRES_SCHEMA"]
    with _connect(pg_env) as conn:
        rows = conn.execute(
            f'SELECT notification_id, originator_id::text, originator_version FROM "{schema}".'
            "hub_events WHERE notification_id = ANY(%s) ORDER BY notification_id",
            (positions,),
        ).fetchall()
        keys = count(conn, f'SELECT count(*) FROM "{schema}".hub_keys WHERE version IS NOT NULL')
        sealed = count(
            conn, f'SELECT count(*) FROM "{schema}".hub_customer_keys WHERE key IS NOT NULL'
        )
    assert [(r[0], r[1]) for r in rows] == sorted((o.position, o.customer_id) for o in outcomes)
    assert keys == 7  # one source key row per touchpoint
    assert sealed == len({o.customer_id for o in outcomes}) == 3
    for outcome in outcomes:  # each one's history entry is where the write said it is
        history = hub.history(outcome.customer_id)
        assert outcome.position in [e["position"] for e in history]
    assert hub.verify().ok
