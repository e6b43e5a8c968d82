"""Ingest benchmark: the store's raw ceiling, one touchpoint per transaction, and the batch path.

    .venv/bin/python -m bench.ingest [--quick] [--store sqlite|postgres|both] [-n N]

For each store, in one run and one database (a fresh PostgreSQL database, created and
dropped; a temporary SQLite file per phase):

- **naive**: `Hub.record`, one touchpoint per transaction, no aggregate cache;
- **batch**: `Hub.record_batch` in batches of `--batch` (500), every rule on, with the
  aggregate cache (`HUB_AGGREGATE_CACHE_SIZE`, 10,000);
- **ceiling**: the stored events the batch phase wrote, copied again into a scratch table of
  the same shape in one go (PostgreSQL: COPY; SQLite: one executemany in one transaction),
  i.e. rows of exactly the hub's stored size, without the hub (best of three copies).

The workload is a realistic mix: many customers with several touchpoints each (an order,
its shipping, an email, calls, a quote; some consent withdrawals and marketing), claims that
agree with the facts, a few contradicting quotes and marketing after opt-out (rejected by
the rules), and a few re-sent touchpoints (duplicates). Customers' touchpoints interleave
within windows of a few batches, so most batches reload customers already in the store.
Envelopes are parsed before timing (that is the HTTP edge's work); normalisation, identity
resolution, rules, sealing, hashing and the commit are timed.

Prints one table; the last line is one JSON object of every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sqlite3
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench._scratch import ScratchDatabase
from hub.app import Accepted, Hub
from hub.envelope import Envelope, parse_envelope
from hub.errors import ConflictError, HubError
from hub.settings import Settings

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
REPEATS = 3  # the ceiling is the best of this many copies: a short run is easily disturbed


# -- the workload -----------------------------------------------------------------------------


def customer_touchpoints(
    rng: random.Random, run: str, i: int, phones_from: int = 1_000_000
) -> list[dict[str, Any]]:
    """One customer's touchpoints, in the order the channels send them. The phone number is
    `phones_from + i` (Berlin, 7 digits): a second workload into the same store needs its own
    range, or its touchpoints join the first one's customers by phone."""
    email = f"customer.{i}@{run}.example.com"
    phone = f"+49 30 {phones_from + i:07d}"
    account = f"shop:{run}-{i}"
    order = f"{run}-A-{i}"
    sku = f"SKU-{i % 97}"
    price = f"{10 + i % 90}.90"
    t = START + timedelta(minutes=i)
    agent = {"kind": "agent", "id": f"agent-{i % 23}", "name": f"Agent {i % 23}"}

    def tp(
        channel: str,
        sid: str,
        kind: str,
        minutes: int,
        customer: dict[str, str],
        data: dict[str, Any],
        **extra: Any,
    ) -> dict[str, Any]:
        return {
            "source": {"channel": channel, "id": f"{run}-{sid}-{i}"},
            "type": kind,
            "occurred_at": (t + timedelta(minutes=minutes)).isoformat(),
            "customer": customer,
            "actor": agent,
            "data": data,
            **extra,
        }

    items = [
        tp(
            "web",
            "order",
            "order.placed",
            0,
            {"email": email, "account": account},
            {
                "order_id": order,
                "total": {"amount": price, "currency": "EUR"},
                "items": [{"sku": sku, "qty": 1, "price": {"amount": price, "currency": "EUR"}}],
                "shipping_address": {"street": f"Hauptstr. {i % 200}", "city": "Berlin"},
            },
        ),
        tp(
            "email",
            "mail",
            "email.received",
            30,
            {"email": email},
            {"message_id": f"<{run}-{i}@mail.example.com>", "subject": "Where is my order?"},
        ),
        tp(
            "phone",
            "call-in",
            "call.inbound",
            60,
            {"email": email, "phone": phone},
            {
                "summary": "Asked about the delivery date",
                "duration_s": 180,
                "callback_requested": True,
            },
        ),
        tp(
            "erp",
            "ship",
            "order.status_changed",
            90,
            {"account": account},
            {"order_id": order, "status": "shipped"},
        ),
        tp(
            "phone",
            "call-out",
            "call.outbound",
            120,
            {"phone": phone},
            {"summary": "Told the customer the order shipped", "duration_s": 95},
            claims=[{"subject": f"order:{order}:status", "value": "shipped"}],
            in_reply_to=[f"email:<{run}-{i}@mail.example.com>"],
        ),
        tp(
            "sales",
            "quote",
            "quote.given",
            150,
            {"email": email},
            {
                "sku": sku,
                "price": {"amount": price, "currency": "EUR"},
                "valid_until": (t + timedelta(days=30)).isoformat(),
            },
        ),
    ]
    roll = rng.random()
    if roll < 0.25:
        items.append(
            tp(
                "web",
                "optout",
                "consent.changed",
                160,
                {"email": email},
                {"purpose": "marketing", "granted": False},
            )
        )
        items.append(  # rejected: consent withdrawn
            tp(
                "marketing",
                "mail-out",
                "marketing.sent",
                170,
                {"email": email},
                {"campaign": "spring", "asset": "spring-1"},
            )
        )
    elif roll < 0.5:
        items.append(
            tp(
                "marketing",
                "mail-out",
                "marketing.sent",
                170,
                {"email": email},
                {"campaign": "spring", "asset": "spring-1"},
            )
        )
    if rng.random() < 0.05:  # rejected: a second quote at another price while the first holds
        items.append(
            tp(
                "sales",
                "quote-2",
                "quote.given",
                200,
                {"phone": phone},
                {"sku": sku, "price": {"amount": "1.00", "currency": "EUR"}},
            )
        )
    if rng.random() < 0.1:  # a channel re-sends a touchpoint it already sent
        items.append(dict(items[rng.randrange(len(items))]))
    return items


def workload(run: str, n: int, window: int, seed: int = 7) -> list[Envelope]:
    """About `n` parsed envelopes; customers' touchpoints interleave within `window` items."""
    rng = random.Random(seed)
    envelopes: list[Envelope] = []
    i = 0
    while len(envelopes) < n:
        group: list[list[dict[str, Any]]] = []
        size = 0
        while size < window and size + len(envelopes) < n:
            group.append(customer_touchpoints(rng, run, i))
            size += len(group[-1])
            i += 1
        # Interleave the group's customers at random, each customer's own order kept.
        slots = [c for c, items in enumerate(group) for _ in items]
        rng.shuffle(slots)
        cursors = [0] * len(group)
        for c in slots:
            envelopes.append(parse_envelope(group[c][cursors[c]]))
            cursors[c] += 1
    return envelopes[:n]


# -- the stores -------------------------------------------------------------------------------


def _phase_settings(phase: str) -> dict[str, Any]:
    # The naive path is the one before the write-path work: every customer read from the store.
    return {"aggregate_cache_size": 0} if phase == "naive" else {}


class PostgresStore:
    name = "postgres"

    def __init__(self) -> None:
        self.database = ScratchDatabase()
        self.url = self.database.url

    def hub(self, phase: str) -> Hub:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(phase)))
        env = Settings(database_url=self.url, pool_size=4, **_phase_settings(phase))
        return Hub({**env.eventsourcing_env(), "POSTGRES_SCHEMA": phase})

    def ceiling(self, hub: Hub) -> tuple[int, float, float]:
        """Rows/s of a binary COPY of the hub's stored events, in one transaction, into a
        scratch table like its own (same columns, defaults, keys and indexes)."""
        recorder: Any = hub.recorder
        schema, table = recorder.datastore.schema, recorder.events_table_name
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                sql.SQL(
                    "SELECT originator_id, originator_version, topic, state FROM {}.{} "
                    "ORDER BY notification_id"
                ).format(sql.Identifier(schema), sql.Identifier(table))
            ).fetchall()
            conn.execute(
                sql.SQL("CREATE TABLE {}.scratch (LIKE {}.{} INCLUDING ALL)").format(
                    sql.Identifier(schema), sql.Identifier(schema), sql.Identifier(table)
                )
            )
            avg = sum(len(r[3]) for r in rows) / len(rows)
            best = float("inf")
            for _ in range(REPEATS):
                conn.execute(sql.SQL("TRUNCATE {}.scratch").format(sql.Identifier(schema)))
                started = time.perf_counter()
                with (
                    conn.transaction(),
                    conn.cursor() as cur,
                    cur.copy(
                        sql.SQL(
                            "COPY {}.scratch (originator_id, originator_version, topic, state) "
                            "FROM STDIN (FORMAT BINARY)"
                        ).format(sql.Identifier(schema))
                    ) as copy,
                ):
                    copy.set_types(["uuid", "int8", "text", "bytea"])
                    for row in rows:
                        copy.write_row(row)
                best = min(best, time.perf_counter() - started)
        return len(rows), len(rows) / best, avg

    def close(self) -> None:
        self.database.close()


class SQLiteStore:
    name = "sqlite"

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="hub-bench-")

    def hub(self, phase: str) -> Hub:
        path = Path(self.tmp.name) / f"{phase}.db"
        settings = Settings(database_url=f"sqlite:///{path}", **_phase_settings(phase))
        return Hub(settings.eventsourcing_env())

    def ceiling(self, hub: Hub) -> tuple[int, float, float]:
        """Rows/s of one executemany of the hub's stored events, in one transaction, into a
        scratch table like its own (WAL, as the hub's connections)."""
        recorder: Any = hub.recorder
        table = recorder.events_table_name
        path = recorder.datastore.pool.db_name
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        rows = conn.execute(
            f"SELECT originator_id, originator_version, topic, state FROM {table} ORDER BY rowid"
        ).fetchall()
        (create,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        conn.execute(create.replace(table, "scratch", 1))
        avg = sum(len(r[3]) for r in rows) / len(rows)
        best = float("inf")
        for _ in range(REPEATS):
            conn.execute("DELETE FROM scratch")
            started = time.perf_counter()
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO scratch VALUES (?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
            best = min(best, time.perf_counter() - started)
        conn.close()
        return len(rows), len(rows) / best, avg

    def close(self) -> None:
        self.tmp.cleanup()


# -- the phases -------------------------------------------------------------------------------


def _settle() -> None:
    # The parsed workload stays in memory for the whole phase; a server holds only the
    # requests in flight. Keep the collector from walking the workload again and again.
    gc.collect()
    gc.freeze()


def run_naive(hub: Hub, envelopes: list[Envelope]) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    _settle()
    started, cpu = time.perf_counter(), time.process_time()
    for envelope in envelopes:
        try:
            accepted = hub.record(envelope)
            outcomes["duplicate" if accepted.duplicate else "accepted"] += 1
        except ConflictError:
            outcomes["rejected"] += 1
    elapsed = time.perf_counter() - started
    return {
        "items": len(envelopes),
        "seconds": elapsed,
        "per_s": len(envelopes) / elapsed,
        # The hub process's own CPU per touchpoint: steadier than the rate on a shared machine.
        "cpu_us": (time.process_time() - cpu) * 1e6 / len(envelopes),
        **outcomes,
    }


def run_batch(hub: Hub, envelopes: list[Envelope], size: int) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    _settle()
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(envelopes), size):
        for outcome in hub.record_batch(envelopes[start : start + size]):
            if isinstance(outcome, Accepted):
                outcomes["duplicate" if outcome.duplicate else "accepted"] += 1
            elif isinstance(outcome, ConflictError):
                outcomes["rejected"] += 1
            else:
                assert isinstance(outcome, HubError)
                outcomes[outcome.kind] += 1
    elapsed = time.perf_counter() - started
    return {
        "items": len(envelopes),
        "seconds": elapsed,
        "per_s": len(envelopes) / elapsed,
        # The hub process's own CPU per touchpoint: steadier than the rate on a shared machine.
        "cpu_us": (time.process_time() - cpu) * 1e6 / len(envelopes),
        **outcomes,
    }


def bench_store(store: Any, n: int, n_naive: int, batch: int) -> dict[str, Any]:
    naive_hub = store.hub("naive")
    naive = run_naive(naive_hub, workload("naive", n_naive, 4 * batch, seed=11))
    naive_hub.close()
    batch_hub = store.hub("batch")
    batched = run_batch(batch_hub, workload("batch", n, 4 * batch), batch)
    rows, ceiling, avg = store.ceiling(batch_hub)
    batch_hub.close()
    return {
        "ceiling_rows_per_s": round(ceiling),
        "ceiling_rows": rows,
        "avg_state_bytes": round(avg),
        "naive": {**_rounded(naive), "ratio": round(naive["per_s"] / ceiling, 4)},
        "batch": {
            **_rounded(batched),
            "batch_size": batch,
            "ratio": round(batched["per_s"] / ceiling, 4),
        },
    }


def _rounded(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        k: round(v) if k in ("per_s", "cpu_us") else round(v, 3) if isinstance(v, float) else v
        for k, v in figures.items()
    }


def print_table(results: dict[str, dict[str, Any]]) -> None:
    header = f"{'store':<9}{'path':<34}{'items':>8}{'per s':>10}{'ratio':>8}{'cpu us':>8}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        c = r["ceiling_rows_per_s"]
        copy = "COPY" if name == "postgres" else "executemany, 1 tx"
        print(
            f"{name:<9}{'ceiling (' + copy + ', rows/s)':<34}{r['ceiling_rows']:>8}{c:>10}{1:>8.3f}"
        )
        print(
            f"{'':<9}{'naive (record, 1 per tx)':<34}{r['naive']['items']:>8}"
            f"{r['naive']['per_s']:>10}{r['naive']['ratio']:>8.3f}{r['naive']['cpu_us']:>8}"
        )
        b = r["batch"]
        print(
            f"{'':<9}{'batch (record_batch of ' + str(b['batch_size']) + ')':<34}"
            f"{b['items']:>8}{b['per_s']:>10}{b['ratio']:>8.3f}{b['cpu_us']:>8}"
        )
        print(
            f"{'':<9}  batch outcomes: {b.get('accepted', 0)} accepted, "
            f"{b.get('duplicate', 0)} duplicate, {b.get('rejected', 0)} rejected; "
            f"stored rows avg {r['avg_state_bytes']} B of state"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (well under a minute)")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("-n", type=int, help="touchpoints of the batch path")
    parser.add_argument("--naive", type=int, help="touchpoints of the naive path")
    parser.add_argument("--batch", type=int, default=500, help="touchpoints per batch")
    args = parser.parse_args(argv)
    n = args.n or (6_000 if args.quick else 30_000)
    n_naive = args.naive or (600 if args.quick else 3_000)
    stores = ["postgres", "sqlite"] if args.store == "both" else [args.store]
    results: dict[str, dict[str, Any]] = {}
    for name in stores:
        store = PostgresStore() if name == "postgres" else SQLiteStore()
        try:
            results[name] = bench_store(store, n, n_naive, args.batch)
        finally:
            store.close()
    print_table(results)
    print(json.dumps({"bench": "ingest", "cpus": os.cpu_count(), **results}))


if __name__ == "__main__":
    main()
