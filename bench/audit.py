"""Audit benchmark: `hub verify` and `hub export` over a big store on PostgreSQL, each beside a
plain page-wise read of the same events in the same run.

    .venv/bin/python -m bench.audit            # 1,000,000 events
    .venv/bin/python -m bench.audit --quick    # 60,000 events

Each round runs the three phases one after the other; the figures are the best of the rounds.
The store is made of real hub events: the projections bench's template of customers recorded
through `record_batch`, then copied under new stream ids with new source ids, each copy's
chains re-linked and its source-key rows written (binary COPY), so the whole store verifies
exactly like one the hub wrote. The last line printed is one JSON object of every figure.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
import uuid
from typing import Any

import orjson
import psycopg

from api.app import build_hub
from bench.projections import DEFAULT_URL, plain_read, record_template
from hub.app import Hub
from hub.audit import is_touchpoint
from hub.codec import CHAIN, GENESIS, chain_hash, dumps
from hub.identity import source_digest
from hub.settings import Settings


def copy_rechained(settings: Settings, template: int, copies: int) -> None:
    """Append `copies` copies of the first `template` events, each a valid set of streams."""
    schema = settings.database_schema or "public"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        rows = conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM hub_events "
            "WHERE notification_id <= %s ORDER BY notification_id",
            (template,),
        ).fetchall()
        parsed = []
        for stream, version, topic, state in rows:
            content = orjson.loads(state)
            content.pop(CHAIN, None)
            parsed.append((stream, version, topic, content, is_touchpoint(topic, content)))
        for copy in range(1, copies + 1):
            heads: dict[Any, str] = {}
            events, keys = [], []
            for stream, version, topic, content, touchpoint in parsed:
                new_id = uuid.UUID(hashlib.md5(f"{stream}/{copy}".encode()).hexdigest())
                if touchpoint:
                    content = {**content, "source_id": f"{content['source_id']}~{copy}"}
                    digest = source_digest(content["channel"], content["source_id"])
                    keys.append((digest, str(new_id), version))
                prev = heads.get(new_id, GENESIS) if version > 1 else GENESIS
                digest = chain_hash(prev, str(new_id), version, topic, dumps(content))
                heads[new_id] = digest
                events.append((new_id, version, topic, dumps({**content, CHAIN: {
                    "prev": prev, "hash": digest}})))  # fmt: skip
            with conn.transaction():
                cur = conn.cursor()
                with cur.copy(
                    "COPY hub_events (originator_id, originator_version, topic, state) "
                    "FROM STDIN (FORMAT BINARY)"
                ) as out:
                    out.set_types(["uuid", "int8", "text", "bytea"])
                    for row in events:
                        out.write_row(row)
                with cur.copy(
                    "COPY hub_keys (key, owner, version) FROM STDIN (FORMAT BINARY)"
                ) as out:
                    out.set_types(["text", "text", "int8"])
                    for key_row in keys:
                        out.write_row(key_row)
        conn.execute("ANALYZE hub_events")
        conn.execute("ANALYZE hub_keys")


class Sink:
    """Counts what an export writes (to keep the figure about the hub, not the disk)."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.bytes += len(data)
        return len(data)


def timed_verify(hub: Hub) -> tuple[int, float, float]:
    """Events verified, seconds, and this process's CPU seconds (the hub's own work, which
    other load on the machine slows down less than it slows the wall clock)."""
    started, cpu = time.perf_counter(), time.process_time()
    report = hub.verify()
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert report.ok, report.breaks[:5]
    return report.events, took, cpu


def timed_export(hub: Hub) -> tuple[int, float, int]:
    sink = Sink()
    started = time.perf_counter()
    lines = hub.export(sink.write)
    return lines, time.perf_counter() - started, sink.bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a store of about 60,000 events")
    parser.add_argument("--events", type=int, help="size of the store (default 1,000,000)")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three phases")
    args = parser.parse_args()
    target = args.events or (60_000 if args.quick else 1_000_000)
    admin_url = args.database_url.rsplit("/", 1)[0] + "/postgres"
    dbname = args.database_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(f'CREATE DATABASE "{dbname}"')
    schema = f"bench_audit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    settings = Settings(database_url=args.database_url, database_schema=schema, pool_size=4)
    hub = build_hub(settings)
    try:
        started = time.perf_counter()
        template = record_template(hub, customers=1000, per_customer=9)
        copies = max(0, (target - template) // template)
        copy_rechained(settings, template, copies)
        head = hub.recorder.max_notification_id() or 0
        print(
            f"store: {head:,} events ({template:,}-event template x {copies + 1}) "
            f"made in {time.perf_counter() - started:.0f} s"
        )
        # Interleaved rounds, best of each: the machine is shared, so a phase that ran
        # during someone else's burst should not decide the ratio.
        reads, verifies, exports = [], [], []
        for _ in range(args.rounds):
            reads.append(plain_read(hub, 1000))
            verifies.append(timed_verify(hub))
            exports.append(timed_export(hub))
        read_count, read_s = min(reads, key=lambda r: r[1])
        verified, verify_s, verify_cpu_s = min(verifies, key=lambda r: r[1])
        exported, export_s, export_bytes = min(exports, key=lambda r: r[1])
        assert read_count == verified == exported == head, (
            read_count, verified, exported, head,
        )  # fmt: skip
        read_rate = read_count / read_s
        figures = {
            "bench": "audit",
            "store": "postgresql",
            "events": head,
            "rounds": args.rounds,
            "plain_read_events_per_s": round(read_rate),
            "verify_events_per_s": round(verified / verify_s),
            "verify_ratio_to_plain_read": round(verified / verify_s / read_rate, 3),
            "verify_s": round(verify_s, 1),
            "verify_cpu_us_per_event": round(verify_cpu_s / verified * 1e6, 1),
            "export_events_per_s": round(head / export_s),
            "export_ratio_to_plain_read": round(head / export_s / read_rate, 3),
            "export_mb": round(export_bytes / 1e6, 1),
            "load_average_1m": round(os.getloadavg()[0], 1),
        }
        print(f"{'figure':<30} {'value':>14}")
        for name, value in figures.items():
            if isinstance(value, int | float):
                print(f"{name:<30} {value:>14,}")
        print(orjson.dumps(figures).decode())
    finally:
        hub.close()
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
