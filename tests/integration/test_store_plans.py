"""The write path's reads of the events table use its primary key on PostgreSQL, even on a
young table whose statistics are stale (no full scan per decision batch)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composable

from hub.app import Hub
from hub.settings import Settings
from tests.conftest import pg_url
from tests.factories import touchpoint


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in plan_nodes(child))]


def scans_of_events(hub: Hub, statement: Composable | bytes, params: tuple[Any, ...]) -> list[str]:
    """The node types reading the events table when PostgreSQL runs `statement` (composed, or
    kept as bytes as the batch's statements are)."""
    datastore = hub.store.datastore  # type: ignore[attr-defined]
    explain = (
        b"EXPLAIN (FORMAT JSON) " + statement
        if isinstance(statement, bytes)
        else (SQL("EXPLAIN (FORMAT JSON) ") + statement)
    )
    with datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
        (doc,) = curs.execute(explain, params).fetchone()
    plan = (json.loads(doc) if isinstance(doc, str) else doc)[0]["Plan"]
    table = hub.recorder.events_table_name  # type: ignore[attr-defined]
    return [n["Node Type"] for n in plan_nodes(plan) if n.get("Relation Name") == table]


@pytest.fixture
def young_store(pg_database: str) -> Iterator[tuple[Hub, list[UUID]]]:
    """A hub on a new PostgreSQL database, 2,400 touchpoints in: no statistics gathered yet."""
    hub = Hub(Settings(database_url=pg_url(pg_database)).eventsourcing_env())
    customers: list[UUID] = []
    for start in range(0, 600, 200):
        outcomes = hub.record_batch(
            [
                touchpoint(
                    source={"channel": "phone", "id": f"call-{i}-{n}"},
                    customer={"email": f"c{i}@example.com"},
                )
                for i in range(start, start + 200)
                for n in range(4)
            ]
        )
        customers += [UUID(o.customer_id) for o in outcomes[::4]]  # type: ignore[union-attr]
    try:
        yield hub, customers
    finally:
        hub.close()


def test_refreshing_cached_customers_reads_only_their_newer_events(
    young_store: tuple[Hub, list[UUID]],
) -> None:
    hub, customers = young_store
    streams = customers[:16]
    versions = [2] * len(streams)
    statement = hub.store._select_streams  # type: ignore[attr-defined]
    assert "Seq Scan" not in scans_of_events(hub, statement, (streams, versions))


def test_positions_of_earlier_touchpoints_are_read_by_key(
    young_store: tuple[Hub, list[UUID]],
) -> None:
    hub, customers = young_store
    streams = customers[:16]
    statement = hub.store._select_positions  # type: ignore[attr-defined]
    assert "Seq Scan" not in scans_of_events(hub, statement, (streams, [3] * len(streams)))
