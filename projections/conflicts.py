"""Conflicts: contradictions the hub refused (rejected attempts) and the ones it recorded in
record mode (backfill) and flagged, one row per conflict, for dashboards and auditors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from projections.base import Event, View, dumps, marks, norm_time
from projections.store import Table, Tx

ROWS = Table(
    "view_conflicts",
    (
        ("position", "bigint"),
        ("idx", "bigint"),
        ("customer", "text"),
        ("rule", "text"),
        ("outcome", "text"),
        ("recorded_at", "text"),
        ("doc", "text"),
    ),
    key=("position", "idx"),
    indexes=(
        ("customer", "position"),
        ("rule", "position"),
        ("outcome", "position"),
        ("recorded_at",),
    ),
)


class Conflicts(View):
    name = "conflicts"
    tables = (ROWS,)

    def apply(self, tx: Tx, events: Sequence[Event]) -> None:
        rows = []
        for event in events:
            if event.kind == "rejected":
                attempt = event.doc["touchpoint"]
                found = event.doc.get("conflicts") or [{"rule": event.doc["reason"]}]
                customer = event.doc.get("customer_id")
                outcome = "rejected"
            elif event.kind == "touchpoint" and event.doc.get("detected_conflicts"):
                attempt = {
                    k: event.doc.get(k)
                    for k in ("touchpoint_id", "channel", "source_id", "occurred_at", "actor")
                }
                attempt["type"] = event.type
                found = event.doc["detected_conflicts"]
                customer, outcome = event.stream, "detected"
            else:
                continue
            for idx, conflict in enumerate(found):
                doc = {
                    "position": event.position,
                    "outcome": outcome,
                    "customer_id": customer,
                    "recorded_at": event.recorded_at,
                    "reason": event.doc.get("reason", "conflict"),
                    "touchpoint": attempt,
                    **conflict,
                }
                rows.append(
                    (
                        event.position,
                        idx,
                        customer,
                        conflict.get("rule"),
                        outcome,
                        event.recorded_at,
                        dumps(doc),
                    )
                )
        tx.insert(ROWS, rows)


def conflicts(
    tx: Tx,
    *,
    streams: Sequence[str] = (),
    rules: Sequence[str] = (),
    outcome: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Newest first; `before` is the position the previous page stopped at."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    if streams:
        where.append(f"customer IN ({marks(streams)})")
        params += list(streams)
    if rules:
        where.append(f"rule IN ({marks(rules)})")
        params += list(rules)
    if outcome:
        where.append("outcome = ?")
        params.append(outcome)
    if since:
        where.append("recorded_at >= ?")
        params.append(norm_time(since))
    if until:
        where.append("recorded_at < ?")
        params.append(norm_time(until))
    if before is not None:
        where.append("position < ?")
        params.append(before)
    rows = tx.execute(
        f"SELECT position, doc FROM {{s}}view_conflicts WHERE {' AND '.join(where)} "
        "ORDER BY position DESC, idx LIMIT ?",
        [*params, limit + 1],
    )
    found = [orjson.loads(row["doc"]) for row in rows[:limit]]
    following = None
    if len(rows) > limit:
        # A page ends at a whole event, so `before` never splits one event's conflicts.
        cut = rows[limit]["position"]
        found = [c for c in found if c["position"] != cut] or found
        following = found[-1]["position"]
    return {"conflicts": found, "next_before": following}
