"""Query plans of every read of the projections on PostgreSQL at 10 million events.

    .venv/bin/python -m bench.explain                     # build (once) or reuse, then explain
    .venv/bin/python -m bench.explain --events 1000000    # a smaller store, same checks

The view tables are filled directly with generated rows (server-side `generate_series`, in key
order) shaped like the projections' own: a timeline of `--events` touchpoints over a tenth as
many customers plus one customer with 10,000, a profile and merge links per customer, open
items, claims, conflicts and analytics counts in proportion. Then each read runs through the
same functions the API calls, every statement it sends is run again under
`EXPLAIN (ANALYZE, FORMAT JSON)`, and a plan summary is printed per read. A sequential scan of
a table of more than `--big` rows fails the run (exit status 1). The last line is one JSON
object of every read's statements, scans and time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import psycopg

from api.app import build_hub
from bench.projections import DEFAULT_URL
from hub.settings import Settings
from projections import analytics, conflicts, open_items, reads
from projections.base import dumps
from projections.profile import _empty
from projections.runner import Projections
from projections.store import Tx

NOW = "2026-12-01T00:00:00.000000Z"
LONG = "ffffffff-0000-4000-8000-000000000000"  # the customer with 10,000 touchpoints
CHANNELS = "ARRAY['email','web','phone','service','sales']"
TYPES = (
    "ARRAY['email.received','order.placed','call.outbound','service.opened','note.added',"
    "'promise.made','profile.updated','web.form_submitted']"
)
PROFILE = dumps(_empty("STREAM"))
SAID = {"touchpoint_id": "t", "type": "order.placed", "channel": "web", "actor": None}
SAID |= {"occurred_at": "2026-01-01T00:00:00Z", "recorded_at": "2026-01-01T00:00:00.000000Z"}
CLAIM = dumps({"subject": "s", "value": "v", "valid_until": None, "said_by": SAID})
ENDING = dumps({"by": SAID})
KINDS = "ARRAY['reply','repair','promise','callback','question','complaint','registration']"


def stream(expr: str) -> str:
    """A uuid-shaped customer id from an integer expression, sorting in its order."""
    return f"'00000000-0000-4000-8000-' || lpad(to_hex({expr}), 12, '0')"


def fill_statements(events: int) -> list[str]:
    customers = max(1, events // 10)
    c = "c"
    at = "to_char(timestamp '2026-01-01' + (c * 7 + k * 86400 / 3) * interval '1 second', "
    at += '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')'
    return [
        # timeline: ten touchpoints per customer, then the long customer's 10,000
        "INSERT INTO view_timeline SELECT "
        f"{stream(c)}, {at}, c * 10 + k + 1, ({TYPES})[1 + (c + k) % 8], "
        f"({CHANNELS})[1 + (c + k) % 5], '{{\"data\":{{}}}}' "
        f"FROM generate_series(0, {customers - 1}) c, generate_series(0, 9) k ORDER BY 1, 2, 3",
        "INSERT INTO view_timeline SELECT "
        f"'{LONG}', to_char(timestamp '2026-01-01' + k * interval '37 minutes', "
        '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'), '
        f"{events} + k + 1, ({TYPES})[1 + k % 8], ({CHANNELS})[1 + k % 5], "
        "'{\"data\":{}}' FROM generate_series(0, 9999) k",
        # one profile per customer; one in a hundred absorbed another (merge links)
        f"INSERT INTO view_profile SELECT {stream(c)}, replace('{PROFILE}', 'STREAM', "
        f"{stream(c)}) FROM generate_series(0, {customers - 1}) c",
        f"INSERT INTO view_profile VALUES ('{LONG}', replace('{PROFILE}', 'STREAM', '{LONG}'))",
        f"INSERT INTO view_profile_links SELECT {stream(c)}, NULL, "
        f"'[\"' || {stream(c + ' + 1')} || '\"]' "
        f"FROM generate_series(0, {customers - 2}, 100) c",
        f"INSERT INTO view_profile_links SELECT {stream(c + ' + 1')}, {stream(c)}, '[]' "
        f"FROM generate_series(0, {customers - 2}, 100) c",
        # open items: three per customer, one in five still open
        "INSERT INTO view_open_items SELECT "
        f"{stream(c)}, 'item:' || k, ({KINDS})[1 + (c + k) % 7], "
        "(ARRAY['normal','urgent','high','low'])[1 + c % 4], "
        f"({CHANNELS})[1 + (c + k) % 5], 'agent-' || (c + k) % 50, {at}, "
        f"to_char(timestamp '2026-01-04' + (c * 7 + k * 86400 / 3) * interval '1 second', "
        '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'), '
        "CASE WHEN (c + k) % 5 = 0 THEN 1 ELSE 0 END, "
        f"CASE WHEN (c + k) % 5 = 0 THEN NULL ELSE {at} END, "
        "CASE WHEN (c + k) % 5 = 0 THEN NULL ELSE 3600 END, c * 10 + k + 1, '{}' "
        f"FROM generate_series(0, {customers - 1}) c, generate_series(0, 2) k ORDER BY 1, 2",
        f"INSERT INTO view_open_items_contacts SELECT {stream(c)}, {at.replace('k', '0')}, 't' "
        f"FROM generate_series(0, {customers - 1}) c",
        "INSERT INTO view_open_items_members SELECT stream, merged_into FROM view_profile_links "
        "WHERE merged_into IS NOT NULL",
        # claims: one per customer, every other one ended by a later fact
        f"INSERT INTO view_claims SELECT {stream(c)}, c * 10 + 3, 0, "
        f"'order:O-' || c || ':status', '{CLAIM}' "
        f"FROM generate_series(0, {customers - 1}) c",
        f"INSERT INTO view_claims_endings SELECT {stream(c)}, c * 10 + 5, "
        f"'order:O-' || c || ':status', 'overtaken', '{ENDING}' "
        f"FROM generate_series(0, {customers - 1}, 2) c",
        # conflicts: one in fifty customers had a rejected or detected contradiction
        "INSERT INTO view_conflicts SELECT c * 10 + 4, 0, "
        f"{stream(c)}, (ARRAY['claim-vs-fact','quote-in-force','promise-due','consent',"
        "'identity','channel-order'])[1 + c % 6], (ARRAY['rejected','detected'])[1 + c % 2], "
        f"{at.replace('k', '4')}, '{{\"position\":' || (c * 10 + 4) || '}}' "
        f"FROM generate_series(0, {customers - 1}, 50) c",
        # analytics: the dimensions' combinations seen, a year of days
        "INSERT INTO view_analytics_counts SELECT "
        "to_char(date '2026-01-01' + d, 'YYYY-MM-DD'), "
        f"({CHANNELS})[1 + t % 5], ({TYPES})[1 + t], '', '', 'agent-' || a, 1 + (d * t) % 40 "
        "FROM generate_series(0, 364) d, generate_series(0, 7) t, generate_series(0, 24) a",
    ]


def build(settings: Settings, events: int) -> Projections:
    """The store's projections, their tables filled unless they already hold the rows."""
    hub = build_hub(settings)
    views = Projections(hub)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.database_schema}"')
        found = conn.execute("SELECT count(*) FROM view_profile").fetchone()
        if found and found[0] >= events // 10:
            print(f"store: reusing the view tables in {settings.database_schema}")
            return views
        started = time.perf_counter()
        for table in views.tables:
            conn.execute(f"TRUNCATE {table.name}")
        for statement in fill_statements(events):
            conn.execute(statement)
        conn.execute("ANALYZE")
        took = time.perf_counter() - started
        print(f"store: view tables of {events:,} events filled in {took:.0f} s")
    return views


class Recording:
    """A cursor that remembers every statement sent through it (for EXPLAIN afterwards)."""

    def __init__(self, cursor: Any):
        self._cursor = cursor
        self.sent: list[tuple[str, Any]] = []

    def execute(self, query: str, params: Any = ()) -> Any:
        self.sent.append((query, params))
        return self._cursor.execute(query, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def scans(plan: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    yield plan["Node Type"], plan.get("Relation Name") or plan.get("Index Name")
    for child in plan.get("Plans", ()):
        yield from scans(child)


def explain(views: Projections, name: str, query: Callable[[Tx], Any], big: int) -> dict[str, Any]:
    """Run the read once, then EXPLAIN ANALYZE each of its statements; the summary."""
    with views.recorder.tx(commit=False) as tx:
        recording = Recording(tx.cursor)
        tx.cursor = recording
        started = time.perf_counter()
        query(tx)
        took = (time.perf_counter() - started) * 1000
    statements = []
    # A transaction of its own: a read that computes long in Python (service levels) must
    # not leave the plans to a session the store closed for idling in a transaction.
    with views.recorder.tx(commit=False) as tx:
        tx.cursor.execute(f"SET LOCAL search_path TO {tx.prefix.rstrip('.')}")
        for sql, params in recording.sent:
            tx.cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
            plan = tx.cursor.fetchone()["QUERY PLAN"][0]
            nodes = list(scans(plan["Plan"]))
            full = [
                relation
                for kind, relation in nodes
                if kind == "Seq Scan" and relation and _rows(tx, relation) > big
            ]
            statements.append(
                {
                    "sql": " ".join(sql.split())[:160],
                    "plan": [f"{kind} {relation or ''}".strip() for kind, relation in nodes],
                    "ms": round(plan["Execution Time"], 2),
                    "full_scans": full,
                }
            )
    return {"read": name, "ms": round(took, 2), "statements": statements}


def _rows(tx: Tx, relation: str) -> int:
    """The planner's row count of a table (or index) of the store's schema."""
    tx.cursor.execute(
        "SELECT c.reltuples::bigint AS n FROM pg_class c JOIN pg_namespace s "
        "ON s.oid = c.relnamespace WHERE c.relname = %s AND s.nspname = current_schema()",
        [relation],
    )
    row = tx.cursor.fetchone()
    return int(row["n"]) if row else 0


def reads_to_check(customer: str, merged: str) -> list[tuple[str, Callable[[Tx], Any]]]:
    def page2(tx: Tx) -> Any:
        first = reads.read_timeline(tx, LONG, limit=50)
        return reads.read_timeline(tx, LONG, limit=50, cursor=first["next_cursor"])

    return [
        ("timeline", lambda tx: reads.read_timeline(tx, LONG, limit=50)),
        ("timeline page 2", page2),
        ("timeline channel", lambda tx: reads.read_timeline(tx, LONG, channels=["phone"])),
        ("timeline type", lambda tx: reads.read_timeline(tx, LONG, types=["note.added"])),
        (
            "timeline since/until",
            lambda tx: reads.read_timeline(
                tx, LONG, since="2026-03-01T00:00:00.000000Z", until="2026-03-08T00:00:00.000000Z"
            ),
        ),
        ("timeline merged", lambda tx: reads.read_timeline(tx, merged)),
        ("profile", lambda tx: reads.read_profile(tx, customer)),
        ("profile merged", lambda tx: reads.read_profile(tx, merged)),
        ("open items", lambda tx: reads.read_open_items(tx, customer, NOW)),
        ("open items closed too", lambda tx: reads.read_open_items(tx, customer, NOW, True)),
        ("claims", lambda tx: reads.read_claims(tx, customer, NOW)),
        ("queue", lambda tx: open_items.queue(tx, NOW)),
        ("queue kind", lambda tx: open_items.queue(tx, NOW, kinds=["repair"])),
        ("queue channel", lambda tx: open_items.queue(tx, NOW, channels=["phone"])),
        ("queue assignee", lambda tx: open_items.queue(tx, NOW, assignee="agent-7")),
        ("queue overdue", lambda tx: open_items.queue(tx, NOW, overdue=True)),
        ("queue not overdue", lambda tx: open_items.queue(tx, NOW, overdue=False)),
        (
            "queue after",
            lambda tx: open_items.queue(tx, NOW, after=("2026-06-01T00:00:00.000000Z", "", "")),
        ),
        ("conflicts", lambda tx: conflicts.conflicts(tx)),
        ("conflicts customer", lambda tx: conflicts.conflicts(tx, streams=[customer])),
        ("conflicts rule", lambda tx: conflicts.conflicts(tx, rules=["consent"])),
        ("conflicts outcome", lambda tx: conflicts.conflicts(tx, outcome="detected")),
        (
            "conflicts since/until",
            lambda tx: conflicts.conflicts(
                tx, since="2026-02-01T00:00:00Z", until="2026-02-02T00:00:00Z"
            ),
        ),
        ("conflicts before", lambda tx: conflicts.conflicts(tx, before=1_000_000)),
        (
            "analytics by channel, a month",
            lambda tx: analytics.touchpoint_counts(tx, ["channel"], "2026-03-01", "2026-03-31"),
        ),
        (
            "analytics by day and agent, a week",
            lambda tx: analytics.touchpoint_counts(
                tx, ["day", "agent"], "2026-03-01", "2026-03-07"
            ),
        ),
        (
            "service levels, a month",
            lambda tx: analytics.service_levels(
                tx, NOW, "2026-03-01T00:00:00.000000Z", "2026-04-01T00:00:00.000000Z"
            ),
        ),
        (
            "service levels by agent, a week",
            lambda tx: analytics.service_levels(
                tx, NOW, "2026-03-01T00:00:00.000000Z", "2026-03-08T00:00:00.000000Z", True
            ),
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--schema", help="default: explain_<events>")
    parser.add_argument("--big", type=int, default=100_000, help="rows that make a table big")
    args = parser.parse_args()
    schema = args.schema or f"explain_{args.events}"
    admin_url = args.database_url.rsplit("/", 1)[0] + "/postgres"
    dbname = args.database_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    settings = Settings(database_url=args.database_url, database_schema=schema, pool_size=2)
    views = build(settings, args.events)
    customer = "00000000-0000-4000-8000-" + f"{12345:012x}"
    merged = "00000000-0000-4000-8000-" + f"{100:012x}"  # absorbed the customer after it
    results = []
    try:
        print(f"{'read':<36} {'ms':>8}  plan")
        for name, query in reads_to_check(customer, merged):
            found = explain(views, name, query, args.big)
            results.append(found)
            for number, statement in enumerate(found["statements"]):
                label = name if number == 0 else ""
                ms = f"{found['ms']:>8.2f}" if number == 0 else " " * 8
                print(f"{label:<36} {ms}  {' > '.join(statement['plan'])}")
    finally:
        views.hub.close()
    full = [
        (found["read"], relation)
        for found in results
        for statement in found["statements"]
        for relation in statement["full_scans"]
    ]
    for read, relation in full:
        print(f"FULL SCAN: {read} reads all of {relation}", file=sys.stderr)
    print(
        orjson.dumps(
            {
                "bench": "explain",
                "events": args.events,
                "big_rows": args.big,
                "full_scans": [f"{read}: {relation}" for read, relation in full],
                "reads": results,
            }
        ).decode()
    )
    return 1 if full else 0


if __name__ == "__main__":
    sys.exit(main())
