"""Dashboard page latency: time to first byte of the customer page of a customer with 10,000
events and of the queue page over 100,000 open items, from a real `hub serve`, beside the JSON
reads of the same data and `/healthz` in the same run.

    .venv/bin/python -m bench.pages                   # SQLite (the embedded default)
    .venv/bin/python -m bench.pages --quick           # 2,000 events, 10,000 open items
    .venv/bin/python -m bench.pages --store postgres  # a fresh PostgreSQL database, dropped after

The data goes in through the hub's batch path (`record_batch`, 1,000 per batch) and the
projections catch up before the server starts. Requests are sequential on one keep-alive
connection; time to first byte is the time until the status line and headers arrive (pages
are rendered whole before they are sent). Prints a table; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from api.app import build_hub
from bench.http import drop_store, free_port, fresh_store, start_serve
from hub.app import Hub
from hub.envelope import Envelope, parse_envelope
from hub.settings import Settings
from projections.runner import Projections

NOW = datetime.now(UTC).replace(microsecond=0)


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat()


def long_customer_envelope(i: int, total: int) -> Envelope:
    """A busy customer's history, spread over a year: orders through delivery, emails and
    answers, calls that state an order's status, service requests, promises, notes."""
    n, step = i // 10, i % 10
    minutes = (total - i) * 50
    order = f"O-{n}"
    kinds: list[tuple[str, str, dict[str, Any], list[dict[str, Any]]]] = [
        (
            "web",
            "order.placed",
            {"order_id": order, "total": {"amount": "49.90", "currency": "EUR"}},
            [],
        ),
        ("erp", "order.status_changed", {"order_id": order, "status": "paid"}, []),
        ("email", "email.received", {"subject": f"Question {n}", "message_id": f"<q{n}@x>"}, []),
        ("email", "email.sent", {"subject": f"Re: Question {n}"}, []),
        (
            "phone",
            "call.outbound",
            {"summary": "status call"},
            [{"subject": f"order:{order}:status", "value": "paid"}],
        ),
        (
            "service",
            "service.opened",
            {"request_id": f"R-{n}", "kind": "repair", "subject": "Noise"},
            [],
        ),
        ("service", "service.resolved", {"request_id": f"R-{n}", "resolution": "fixed"}, []),
        ("phone", "promise.made", {"promise_id": f"P-{n}", "what": "call back"}, []),
        ("phone", "promise.kept", {"promise_id": f"P-{n}"}, []),
        ("chat", "note.added", {"text": f"note {n}"}, []),
    ]
    channel, kind, data, claims = kinds[step]
    return parse_envelope(
        {
            "source": {"channel": channel, "id": f"long-{i}"},
            "type": kind,
            "occurred_at": at(minutes),
            "customer": {"email": "long.customer@example.com"},
            "actor": {"kind": "agent", "id": f"agent-{i % 7}"},
            "data": data,
            "claims": claims,
        }
    )


def queue_envelope(i: int, total: int, customers: int) -> Envelope:
    """Something owed to a customer: a repair, complaint or question, a message or call to
    answer, a registration to confirm; opened over the last 90 days, so some are overdue and
    some are not. (No outbound contact: it would answer the customer's open messages.)"""
    kind = i % 4
    # A customer's items sit together in the log, as a busy customer's would in a day.
    customer = {"email": f"queue{i * customers // total}@example.com"}
    minutes = (i * 7919) % (90 * 24 * 60)
    choices: list[tuple[str, str, dict[str, Any]]] = [
        (
            "service",
            "service.opened",
            {
                "request_id": f"Q-{i}",
                "kind": ["repair", "complaint", "question"][i // 4 % 3],
                "priority": ["low", "normal", "high", "urgent"][i // 12 % 4],
                "subject": "Broken",
            },
        ),
        ("email", "email.received", {"subject": f"Where is my order {i}?"}),
        ("phone", "call.inbound", {"summary": "please call back", "callback_requested": True}),
        ("web", "web.registered", {"event_id": f"EV-{i}", "event_name": "Workshop"}),
    ]
    channel, kind_name, data = choices[kind]
    return parse_envelope(
        {
            "source": {"channel": channel, "id": f"queue-{i}"},
            "type": kind_name,
            "occurred_at": at(minutes),
            "customer": customer,
            "data": data,
        }
    )


def record(hub: Hub, items: list[Envelope], batch: int = 1000) -> int:
    refused = 0
    for start in range(0, len(items), batch):
        outcomes = hub.record_batch(items[start : start + batch])
        refused += sum(not hasattr(o, "position") for o in outcomes)
    return refused


def ttfb(port: int, path: str, samples: int, warm: int = 10) -> dict[str, float]:
    """Time to first byte (status line and headers) and to the last byte, in ms."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    first: list[float] = []
    whole: list[float] = []
    size = 0
    for n in range(warm + samples):
        started = time.perf_counter()
        conn.request("GET", path, headers={"Accept": "text/html"})
        response = conn.getresponse()
        got_head = time.perf_counter()
        body = response.read()
        done = time.perf_counter()
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status} {body[:300]!r}")
        if n >= warm:
            first.append((got_head - started) * 1000)
            whole.append((done - started) * 1000)
            size = len(body)
    conn.close()
    first.sort()
    return {
        "p50_ms": round(statistics.median(first), 1),
        "p99_ms": round(first[min(len(first) - 1, int(len(first) * 0.99))], 1),
        "last_byte_p50_ms": round(statistics.median(whole), 1),
        "bytes": size,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="2,000 events, 10,000 open items")
    parser.add_argument("--samples", type=int, help="requests timed per page (default 300)")
    parser.add_argument("--customer-events", type=int, help="events of the long customer")
    parser.add_argument("--open-items", type=int, help="open items in the queues")
    args = parser.parse_args(argv)
    long_events = args.customer_events or (2_000 if args.quick else 10_000)
    open_wanted = args.open_items or (10_000 if args.quick else 100_000)
    samples = args.samples or (100 if args.quick else 300)
    with tempfile.TemporaryDirectory() as folder:
        url = fresh_store(args.store, Path(folder))
        try:
            figures = run(url, long_events, open_wanted, samples)
        finally:
            drop_store(url)
    figures = {"bench": "pages", "store": args.store, **figures}
    print(orjson.dumps(figures).decode())
    return 0


def run(url: str, long_events: int, open_wanted: int, samples: int) -> dict[str, Any]:
    started = time.perf_counter()
    hub = build_hub(Settings(database_url=url, pool_size=4))
    try:
        refused = record(hub, [long_customer_envelope(i, long_events) for i in range(long_events)])
        customers = max(1, open_wanted // 50)
        refused += record(
            hub, [queue_envelope(i, open_wanted, customers) for i in range(open_wanted)]
        )
        long_id = hub.find_customer("email:long.customer@example.com")
        events = hub.recorder.max_notification_id() or 0
        recorded_s = time.perf_counter() - started
        views = Projections(hub)
        views.catch_up()
        open_now = views.read(
            lambda tx: tx.execute("SELECT COUNT(*) AS n FROM {s}view_open_items WHERE is_open = 1")
        )[0]["n"]
        long_rows = views.read(
            lambda tx: tx.execute(
                "SELECT COUNT(*) AS n FROM {s}view_timeline WHERE stream = ?", [long_id]
            )
        )[0]["n"]
    finally:
        hub.close()
    built_s = time.perf_counter() - started
    print(
        f"store: {events:,} events ({refused} refused), {long_rows:,} timeline entries of one "
        f"customer, {open_now:,} open items; recorded in {recorded_s:.0f} s, "
        f"projected by {built_s:.0f} s",
        flush=True,
    )
    port = free_port()
    server = start_serve(url, port, HUB_POOL_SIZE="4")
    try:
        pages = {
            "healthz": "/healthz",
            "customer_page": f"/dashboard/customers/{long_id}",
            "customer_json_profile": f"/v1/customers/{long_id}",
            "customer_json_timeline": f"/v1/customers/{long_id}/timeline?limit=30",
            "customer_json_claims": f"/v1/customers/{long_id}/claims",
            "queue_page": "/dashboard",
            "queue_page_repairs_overdue": "/dashboard?kind=repair&overdue=yes",
            "queue_count_tiles": "/dashboard/queue-counts",
            "queue_json": "/v1/open-items?limit=50",
            "conflicts_page": "/dashboard/conflicts",
            "analytics_page": "/dashboard/analytics",
        }
        few = {"analytics_page", "conflicts_page", "customer_json_claims"}  # slow; not targets
        measured = {
            name: ttfb(port, path, max(20, samples // 10) if name in few else samples)
            for name, path in pages.items()
        }
    finally:
        server.terminate()
        server.wait(30)
    targets = {"customer_page": 100.0, "queue_page": 200.0}
    print(f"{'page':<30}{'TTFB p50':>10}{'p99':>9}{'target':>9}{'last byte':>11}{'KiB':>8}")
    for name, m in measured.items():
        target = f"{targets[name]:.0f}" if name in targets else ""
        print(
            f"{name:<30}{m['p50_ms']:>10.1f}{m['p99_ms']:>9.1f}{target:>9}"
            f"{m['last_byte_p50_ms']:>11.1f}{m['bytes'] / 1024:>8.0f}"
        )
    customer, queue = measured["customer_page"], measured["queue_page"]
    return {
        "events": events,
        "customer_events": long_rows,
        "open_items": open_now,
        "samples": samples,
        **{f"{name}_{k}": v for name, m in measured.items() for k, v in m.items() if k != "bytes"},
        "customer_page_over_json_timeline": round(
            customer["p50_ms"] / measured["customer_json_timeline"]["p50_ms"], 2
        ),
        "queue_page_over_json_queue": round(queue["p50_ms"] / measured["queue_json"]["p50_ms"], 2),
        "customer_page_p99_met": customer["p99_ms"] <= targets["customer_page"],
        "queue_page_p99_met": queue["p99_ms"] <= targets["queue_page"],
        "build_s": round(built_s, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
