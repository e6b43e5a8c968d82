"""Long-stream benchmark: loading one customer with many events, from a snapshot and without.

    .venv/bin/python -m bench.long_stream [--quick] [-n EVENTS] [--interval N]

On a fresh PostgreSQL database (created and dropped): one customer gets `-n` touchpoints
(100,000; `--quick` 20,000) through `Hub.record_batch` with snapshots every `--interval`
events (500). Then, each in a new hub with an empty cache (best of five): the customer
loaded the batch path's way (`Hub.load_customers`) from its latest snapshot, and by a full
replay of every event (snapshots off); and, for the record, the library's own
`repository.get` with snapshots. Prints a table; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.ingest import PostgresStore
from hub.app import Hub
from hub.envelope import parse_envelope
from hub.settings import Settings

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
REPEATS = 5


def touchpoints(n: int) -> list[Any]:
    return [
        parse_envelope(
            {
                "source": {"channel": "phone", "id": f"long-{i}"},
                "type": "call.inbound" if i % 2 else "call.outbound",
                "occurred_at": (START + timedelta(seconds=i)).isoformat(),
                "customer": {"email": "long.stream@example.org"},
                "actor": {"kind": "agent", "id": f"agent-{i % 7}"},
                "data": {"summary": f"call number {i}", "duration_s": 30 + i % 300},
            }
        )
        for i in range(n)
    ]


def hub_on(env: dict[str, str], interval: int) -> Hub:
    return Hub({**env, "SNAPSHOT_INTERVAL": str(interval), "AGGREGATE_CACHE_SIZE": "0"})


def best_load(env: dict[str, str], interval: int, customer: str, library: bool = False) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        hub = hub_on(env, interval)
        started = time.perf_counter()
        loaded = hub.load_customer(customer) if library else hub.load_customers([customer])
        best = min(best, time.perf_counter() - started)
        assert loaded
        hub.close()
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    parser.add_argument("-n", type=int, help="events of the customer")
    parser.add_argument("--interval", type=int, default=500, help="snapshot interval")
    args = parser.parse_args(argv)
    n = args.n or (20_000 if args.quick else 100_000)
    store = PostgresStore()
    try:
        store.hub("long").close()  # creates the schema and the tables
        env = Settings(database_url=store.url, pool_size=4).eventsourcing_env()
        env["POSTGRES_SCHEMA"] = "long"
        writer = hub_on(env, args.interval)
        started = time.perf_counter()
        customer = ""
        items = touchpoints(n)
        for start in range(0, n, 1000):
            for outcome in writer.record_batch(items[start : start + 1000]):
                customer = getattr(outcome, "customer_id", customer)
        write_s = time.perf_counter() - started
        writer.close()
        with_snapshot = best_load(env, args.interval, customer)
        without = best_load(env, 0, customer)
        library = best_load(env, args.interval, customer, library=True)
    finally:
        store.close()
    figures = {
        "bench": "long_stream",
        "cpus": os.cpu_count(),
        "events": n + 1,
        "snapshot_interval": args.interval,
        "write_per_s": round(n / write_s),
        "load_from_snapshot_ms": round(with_snapshot * 1000, 2),
        "load_full_replay_ms": round(without * 1000, 1),
        "library_get_from_snapshot_ms": round(library * 1000, 2),
        "speedup": round(without / with_snapshot, 1),
    }
    print(f"{'customer with':<44}{n + 1:>10} events")
    print(f"{'written (record_batch of 1,000), per s':<44}{figures['write_per_s']:>10}")
    print(f"{'load from snapshot (batch path), ms':<44}{figures['load_from_snapshot_ms']:>10}")
    print(f"{'load by full replay (no snapshots), ms':<44}{figures['load_full_replay_ms']:>10}")
    lib = figures["library_get_from_snapshot_ms"]
    print(f"{'library repository.get from snapshot, ms':<44}{lib:>10}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
