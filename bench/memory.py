"""Memory: `hub serve`'s resident memory with 1,000,000 customers in the store (issue 8).

    .venv/bin/python -m bench.memory                          # 1,000,000 customers, PostgreSQL
    .venv/bin/python -m bench.memory --schema memory_1m       # make the store once, then reuse it
    .venv/bin/python -m bench.memory --customers 20000 --requests 4000   # a small run

The store: a template of 1,000 customers with one touchpoint each, recorded through the hub's
batch path, copied row by row under new stream ids until the store holds `--customers`
streams (`bench/projections.py`'s way of making big logs). Then `hub serve` (the embedded
default: the projections run in the server) starts on it, catches every view up from zero
(RSS is read when it has), and answers `--requests` requests from 16 clients, spread over
random customers of the whole store: writes of a new touchpoint to a customer named by id
(each loads that customer's stream: the aggregate cache fills), profile and timeline reads.
RSS (VmRSS of the `hub serve` process) is printed after the catch-up and after every fifth
of the requests; the peak is VmHWM. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from typing import Any

import orjson
import psycopg

from api.app import build_hub
from bench.http import free_port, start_serve
from bench.projections import DEFAULT_URL, bench_settings, copy_template, record_template
from bench.soak import JSON, rss_mb, session
from hub.settings import Settings
from projections.runner import Projections

TARGET_MB = 500.0
TEMPLATE = 1_000


def make_store(settings: Settings, customers: int) -> int:
    """A store of `customers` customers with one touchpoint each (two events: the stream's
    creation and the touchpoint), reused when the schema holds one; the log's head."""
    hub = build_hub(settings)
    try:
        if not hub.recorder.max_notification_id():
            started = time.perf_counter()
            template = record_template(hub, customers=TEMPLATE, per_customer=1)
            copy_template(settings, template, max(0, customers // TEMPLATE - 1))
            print(f"store: {hub.recorder.max_notification_id():,} events made in "
                  f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        return hub.recorder.max_notification_id() or 0
    finally:
        hub.close()


def count_customers(settings: Settings) -> int:
    schema = settings.database_schema or "public"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        row = conn.execute(
            f'SELECT count(*) FROM "{schema}".hub_events WHERE originator_version = 1'
        ).fetchone()
    return int(row[0]) if row else 0


def sample_customers(settings: Settings, n: int) -> list[str]:
    schema = settings.database_schema or "public"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        rows = conn.execute(
            f'SELECT originator_id::text FROM "{schema}".hub_events TABLESAMPLE SYSTEM (5) '
            "WHERE originator_version = 1 LIMIT %s",
            (n,),
        ).fetchall()
    return [row[0] for row in rows]


async def caught_up(url: str, head: int, customer: str, timeout: float) -> float:
    """Seconds until the views reached `head` (read-your-writes: `min_position`; 503 while
    they are behind)."""
    started = time.perf_counter()
    async with session(url, 1, timeout=30) as client:
        while time.perf_counter() - started < timeout:
            async with client.get(
                f"/v1/customers/{customer}", params={"min_position": head}
            ) as response:
                body = await response.read()
                if response.status == 200:
                    return time.perf_counter() - started
                if response.status != 503:
                    raise SystemExit(f"profile of {customer}: {response.status} {body!r}")
            await asyncio.sleep(1)
    raise SystemExit(f"the views did not reach {head} within {timeout:.0f} s")


async def load(url: str, customers: list[str], requests: int, pid: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    steps: list[dict[str, Any]] = []
    errors = 0
    done = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def client_loop(client: Any) -> None:
        nonlocal errors, done
        while not queue.empty():
            i = queue.get_nowait()
            customer = rng.choice(customers)
            kind = rng.random()
            if kind < 0.5:
                body = {
                    "source": {"channel": "phone", "id": f"memory-{i}"},
                    "type": "call.inbound",
                    "occurred_at": "2026-11-03T09:30:00Z",
                    "customer": {"id": customer},
                    "data": {"summary": "memory bench", "duration_s": 60},
                }
                call = client.post("/v1/touchpoints", data=orjson.dumps(body), headers=JSON)
            elif kind < 0.75:
                call = client.get(f"/v1/customers/{customer}")
            else:
                call = client.get(f"/v1/customers/{customer}/timeline")
            async with call as response:
                await response.read()
                if response.status >= 400:
                    errors += 1
            done += 1
            if done % max(1, requests // 5) == 0:
                steps.append({"requests": done, "rss_mb": round(rss_mb(pid), 1), "errors": errors})
                print(f"{done:>9,} requests  RSS {steps[-1]['rss_mb']:>7.1f} MB  errors {errors}")

    async with session(url, 16) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(16)))
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--schema", help="reuse (or make and keep) the store in this schema")
    args = parser.parse_args(argv)

    schema = args.schema or f"memory_{uuid.uuid4().hex[:8]}"
    settings = bench_settings(args.database_url, schema)
    try:
        head = make_store(settings, args.customers)
        in_store = count_customers(settings)
        customers = sample_customers(settings, 20_000)
        # The views start from zero each run, so the catch-up is part of what is measured.
        hub = build_hub(settings)
        try:
            Projections(hub).clear()
        finally:
            hub.close()
        port = free_port()
        proc = start_serve(args.database_url, port, HUB_DATABASE_SCHEMA=schema, HUB_POOL_SIZE="20")
        url = f"http://127.0.0.1:{port}"
        try:
            started_mb = rss_mb(proc.pid)
            took = asyncio.run(caught_up(url, head, customers[0], timeout=3600))
            after_catch_up = rss_mb(proc.pid)
            print(f"catch-up of {head:,} events in {took:.0f} s; RSS {started_mb:.1f} MB at "
                  f"start, {after_catch_up:.1f} MB after")  # fmt: skip
            steps = asyncio.run(load(url, customers, args.requests, proc.pid))
            peak = rss_mb(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(60)
    finally:
        if not args.schema:
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    last = steps[-1]["rss_mb"] if steps else after_catch_up
    figures = {
        "bench": "memory",
        "customers_in_store": in_store,
        "events_in_store": head,
        "rss_mb_at_start": round(started_mb, 1),
        "catch_up_s": round(took, 1),
        "rss_mb_after_catch_up": round(after_catch_up, 1),
        "steps": steps,
        "rss_mb_last": last,
        "peak_rss_mb": round(peak, 1),
        "target_mb": TARGET_MB,
        "meets_target": peak <= TARGET_MB,
    }
    print(f"peak RSS {peak:.1f} MB (VmHWM) against a target of {TARGET_MB:.0f} MB")
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
