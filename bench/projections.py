"""Projection benchmark: catch-up rate of every projection over a big log, against a plain
page-wise read of the same log in the same run (as plain rows, the way the projections read it;
the library's `select_notifications` beside it), and timeline read latency of a long customer.

    .venv/bin/python -m bench.projections            # 1,000,000 events on PostgreSQL
    .venv/bin/python -m bench.projections --quick    # 60,000 events
    .venv/bin/python -m bench.projections --schema bench_1m   # make it once, then reuse it
    .venv/bin/python -m bench.projections --workers 2   # only the catch-up split over 2 processes

Catch-up is timed from zero until every view reached the log's head, by one runner in this
process and (default `--workers 1,2`) by runners in N processes, each applying its share of
the views (`projections.workers.partition`, as `hub project --workers N` splits them); the
processes are started and connected first, then all begin at once.

The log is made of real hub events: a template of customers recorded through the hub's batch
path (`record_batch`), copied row by row under new stream ids (same topics and stored JSON, so
the projections decode them like any other), then one customer with 10,000 touchpoints
recorded through the hub. The last line printed is one JSON object of every figure.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
import uuid
from typing import Any

import orjson
import psycopg

from api.app import build_hub
from hub.app import Hub
from hub.envelope import Envelope, parse_envelope
from hub.settings import Settings
from projections import reads
from projections.runner import Projections
from projections.workers import partition

DEFAULT_URL = os.environ.get(
    "HUB_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/hub_bench"
)


def envelope(i: int, customer: dict[str, str], day: int) -> Envelope:
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("email.received", {"subject": f"question {i}"}),
        (
            "order.placed",
            {"order_id": f"O-{i}", "total": {"amount": "19.90", "currency": "EUR"}, "region": "DE"},
        ),
        ("call.outbound", {"summary": "called back", "duration_s": 120}),
        ("service.opened", {"request_id": f"R-{i}", "kind": "repair", "priority": "normal"}),
        ("sales.contacted", {"summary": "pitched", "product": "SKU-7"}),
        ("note.added", {"text": f"note {i}"}),
        ("promise.made", {"promise_id": f"P-{i}", "what": "send a loan device"}),
        ("profile.updated", {"name": f"Customer {i}"}),
    ]
    kind, data = kinds[i % len(kinds)]
    if kind == "sales.contacted":  # open complaints would hold sales back: keep it a note
        kind, data = "note.added", {"text": "sales call"}
    return parse_envelope(
        {
            "source": {
                "channel": ["email", "web", "phone", "service", "sales"][i % 5],
                "id": f"b-{i}",
            },
            "type": kind,
            "occurred_at": f"2026-10-{1 + day % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
            "customer": customer,
            "actor": {"kind": "agent", "id": f"agent-{i % 13}"},
            "data": data,
        }
    )


def record_template(hub: Hub, customers: int, per_customer: int) -> int:
    items = [
        envelope(c * per_customer + k, {"email": f"bench{c}@example.com"}, k)
        for k in range(per_customer)
        for c in range(customers)
    ]
    for start in range(0, len(items), 500):
        hub.record_batch(items[start : start + 500])
    return hub.recorder.max_notification_id() or 0


def copy_template(settings: Settings, template: int, copies: int) -> None:
    """Append `copies` copies of the first `template` events under new stream ids."""
    schema = settings.database_schema or "public"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        for start in range(1, copies + 1, 10):
            stop = min(copies, start + 9)
            conn.execute(
                "INSERT INTO hub_events (originator_id, originator_version, topic, state) "
                "SELECT md5(e.originator_id::text || '/' || g)::uuid, e.originator_version, "
                "e.topic, e.state FROM generate_series(%s::int, %s::int) g "
                "CROSS JOIN hub_events e WHERE e.notification_id <= %s "
                "ORDER BY g, e.notification_id",
                (start, stop, template),
            )
        conn.execute("ANALYZE hub_events")


def record_long_customer(hub: Hub, events: int) -> str:
    customer = {"email": "long.customer@example.com"}
    items = [envelope(1_000_000_000 + i, customer, i) for i in range(events)]
    first = hub.record(items[0])
    for start in range(1, events, 500):
        hub.record_batch(items[start : start + 500])
    return first.customer_id


def longest_stream(settings: Settings) -> str:
    """The customer with the most events (the long one) of a reused log."""
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        row = conn.execute(
            "SELECT originator_id FROM hub_events GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    return str(row[0])


def plain_read(hub: Hub, page: int) -> tuple[int, float]:
    """The log read page by page as the projections read it (`select_rows`: plain rows)."""
    started, count, position = time.perf_counter(), 0, 0
    while rows := hub.store.select_rows(position + 1, page):
        count += len(rows)
        position = rows[-1][0]
    return count, time.perf_counter() - started


def library_read(hub: Hub, page: int) -> tuple[int, float]:
    """The same read through the library's `select_notifications` (an object per event)."""
    started, count, position = time.perf_counter(), 0, 0
    while notifications := hub.recorder.select_notifications(position + 1, page):
        count += len(notifications)
        position = notifications[-1].id
    return count, time.perf_counter() - started


def _catch_up_worker(settings: Settings, views: list[str], ready: Any, go: Any, done: Any) -> None:
    """One process of a split catch-up: connect, say ready, wait for the start, catch up."""
    hub = build_hub(settings)
    try:
        runner = Projections(hub, views=views)
        ready.put(views)
        go.wait()
        done.put(runner.catch_up())
    finally:
        hub.close()


def split_catch_up(settings: Settings, names: list[str], workers: int) -> float:
    """Seconds for `workers` processes to bring the views from zero to the log's head."""
    groups = partition(names, workers)
    context = multiprocessing.get_context("spawn")
    ready, done, go = context.Queue(), context.Queue(), context.Event()
    procs = [
        context.Process(target=_catch_up_worker, args=(settings, group, ready, go, done))
        for group in groups
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=120)
    started = time.perf_counter()
    go.set()
    for _ in procs:
        done.get(timeout=3600)
    took = time.perf_counter() - started
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0, proc.exitcode
    print(f"catch-up in {len(groups)} processes: {'; '.join(','.join(g) for g in groups)}")
    return took


def bench_settings(database_url: str, schema: str) -> Settings:
    """Settings for a bench's store in `schema` of `database_url`, both made if missing."""
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    dbname = database_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    return Settings(database_url=database_url, database_schema=schema, pool_size=4)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a log of about 60,000 events")
    parser.add_argument("--events", type=int, help="size of the log (default 1,000,000)")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--reads", type=int, default=2000, help="timeline reads to time")
    parser.add_argument(
        "--schema", help="reuse (or make and keep) the log in this schema instead of a new one"
    )
    parser.add_argument(
        "--workers",
        default="1,2",
        help="the catch-ups to time, by how many processes (comma-separated; default 1,2)",
    )
    args = parser.parse_args()
    target = args.events or (60_000 if args.quick else 1_000_000)
    long_events = 10_000
    schema = args.schema or f"bench_{uuid.uuid4().hex[:8]}"
    settings = bench_settings(args.database_url, schema)
    hub = build_hub(settings)
    try:
        started = time.perf_counter()
        if hub.recorder.max_notification_id():
            long_customer = longest_stream(settings)
            print(f"log: reusing the {hub.recorder.max_notification_id():,} events in {schema}")
        else:
            template = record_template(hub, customers=1000, per_customer=9)
            copies = max(0, (target - long_events - template) // template)
            copy_template(settings, template, copies)
            long_customer = record_long_customer(hub, long_events)
            print(
                f"log: {hub.recorder.max_notification_id():,} events ({template:,}-event "
                f"template x {copies + 1}, +{long_events:,} for one customer) made in "
                f"{time.perf_counter() - started:.0f} s"
            )
        head = hub.recorder.max_notification_id() or 0

        read_count, read_s = plain_read(hub, 1000)
        assert read_count == head, (read_count, head)
        read_rate = read_count / read_s
        library_count, library_s = library_read(hub, 1000)
        assert library_count == head, (library_count, head)
        views = Projections(hub)
        catch_ups: dict[str, Any] = {}
        for workers in [int(n) for n in args.workers.split(",")]:
            views.clear()  # from zero, also when the schema is reused
            if workers == 1:
                started = time.perf_counter()
                applied = views.catch_up()
                took = time.perf_counter() - started
                assert applied == head, (applied, head)
            else:
                took = split_catch_up(settings, views.names, workers)
            assert set(views.positions().values()) == {head}, views.positions()
            key = "catch_up" if workers == 1 else f"catch_up_{workers}_workers"
            catch_ups[f"{key}_events_per_s"] = round(head / took)
            catch_ups[f"{key}_ratio_to_plain_read"] = round((head / took) / read_rate, 3)
            catch_ups[f"{key}_s"] = round(took, 1)

        latencies = []
        for _ in range(args.reads):
            t0 = time.perf_counter()
            page = views.read(lambda tx: reads.read_timeline(tx, long_customer, limit=50))
            latencies.append((time.perf_counter() - t0) * 1000)
        assert len(page["entries"]) == 50
        deep = views.read(lambda tx: reads.read_timeline(tx, long_customer, limit=50))
        cursor: str = deep["next_cursor"]

        def second_page(tx: Any) -> Any:
            return reads.read_timeline(
                tx, long_customer, limit=50, cursor=cursor, types=["note.added"]
            )

        cursor_ms = []
        for _ in range(min(200, args.reads)):
            t0 = time.perf_counter()
            views.read(second_page)
            cursor_ms.append((time.perf_counter() - t0) * 1000)

        figures = {
            "bench": "projections",
            "store": "postgresql",
            "events": head,
            "plain_read_events_per_s": round(read_rate),
            "library_read_events_per_s": round(library_count / library_s),
            **catch_ups,
            "projections": len(views.views),
            "timeline_customer_events": long_events,
            "timeline_p50_ms": round(statistics.median(latencies), 2),
            "timeline_p99_ms": round(percentile(latencies, 0.99), 2),
            "timeline_filtered_page2_p99_ms": round(percentile(cursor_ms, 0.99), 2),
        }
        print(f"{'figure':<34} {'value':>14}")
        for name, value in figures.items():
            if isinstance(value, int | float):
                print(f"{name:<34} {value:>14,}")
        print(orjson.dumps(figures).decode())
    finally:
        hub.close()
        if not args.schema:
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
