"""Cost of checking an API key per request: a verified key from the cache, and a look-up in
the store (cache off), beside one plain store round trip (`max_notification_id`).

    .venv/bin/python -m bench.auth [--store sqlite|postgres] [-n 20000]

Prints a table; the last line is one JSON object of every figure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import psycopg

from api.auth import identify
from hub.app import Hub
from hub.settings import Settings


def per_call_us(fn: Callable[[], Any], n: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def measure(env: dict[str, str], n: int) -> dict[str, float]:
    cached = Hub(env, key_cache_s=3600)
    uncached = Hub(env, key_cache_s=0)
    try:
        _, key = cached.keys.create("agent", "bench")
        return {
            "cached_us": per_call_us(lambda: identify(cached.keys, key), n),
            "store_lookup_us": per_call_us(lambda: identify(uncached.keys, key), n // 10),
            "round_trip_us": per_call_us(uncached.recorder.max_notification_id, n // 10),
        }
    finally:
        cached.close()
        uncached.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("-n", type=int, default=20_000)
    args = parser.parse_args()
    figures: dict[str, dict[str, float]] = {}
    if args.store in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            env = Settings(database_url=f"sqlite:///{tmp}/hub.db").eventsourcing_env()
            figures["sqlite"] = measure(env, args.n)
    if args.store in ("postgres", "both"):
        name = f"hub_bench_auth_{uuid.uuid4().hex[:8]}"
        admin = "postgresql://postgres@127.0.0.1:5432/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            url = f"postgresql://postgres@127.0.0.1:5432/{name}"
            figures["postgres"] = measure(Settings(database_url=url).eventsourcing_env(), args.n)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    print(f"{'store':<10} {'cached key':>12} {'store look-up':>14} {'round trip':>12}  (µs/call)")
    for store, f in figures.items():
        print(
            f"{store:<10} {f['cached_us']:>12.1f} {f['store_lookup_us']:>14.1f} "
            f"{f['round_trip_us']:>12.1f}"
        )
        f["cached_to_round_trip"] = f["cached_us"] / f["round_trip_us"]
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
