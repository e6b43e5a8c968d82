"""Claims in force: what the company told each customer and what became of it.

The view keeps every claim and every event that ends one (a correction that supersedes it, a
fact of a system of record that overtakes it) as rows; a read folds them in log order across
the customer's streams, so merges and unmerges need no rewriting. A later claim on the same
subject replaces an earlier one; a claim whose `valid_until` has passed (at the time of the
read, or at `as_of`) is expired.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from projections.base import Event, View, dumps, marks, norm_time
from projections.store import Table, Tx

CLAIMS = Table(
    "view_claims",
    (
        ("stream", "text"),
        ("position", "bigint"),
        ("idx", "bigint"),
        ("subject", "text"),
        ("doc", "text"),
    ),
    key=("stream", "position", "idx"),
)
ENDINGS = Table(
    "view_claims_endings",
    (
        ("stream", "text"),
        ("position", "bigint"),
        ("subject", "text"),
        ("how", "text"),
        ("doc", "text"),
    ),
    key=("stream", "position", "subject", "how"),
)
FACT_SUBJECTS = {
    "order.placed": ("order", "order_id", "total"),
    "order.status_changed": ("order", "order_id", "status"),
    "service.updated": ("service", "request_id", "status"),
    "service.resolved": ("service", "request_id", "status"),
    "service.visit_scheduled": ("service", "request_id", "visit_date"),
}


def said_by(event: Event) -> dict[str, Any]:
    doc = event.doc
    return {
        "touchpoint_id": doc["touchpoint_id"],
        "type": event.type,
        "channel": doc["channel"],
        "actor": doc.get("actor"),
        "occurred_at": doc["occurred_at"],
        "recorded_at": event.recorded_at,
    }


class Claims(View):
    name = "claims"
    tables = (CLAIMS, ENDINGS)

    def apply(self, tx: Tx, events: Sequence[Event]) -> None:
        claims, endings = [], []
        for event in events:
            if event.kind != "touchpoint":
                continue
            doc = event.doc
            for subject in dict.fromkeys(doc.get("supersedes") or ()):
                reason = {"by": said_by(event), "reason": doc.get("correction_reason")}
                endings.append((event.stream, event.position, subject, "superseded", dumps(reason)))
            fact = FACT_SUBJECTS.get(event.type or "")
            if fact:
                subject = f"{fact[0]}:{doc['data'][fact[1]]}:{fact[2]}"
                endings.append(
                    (
                        event.stream,
                        event.position,
                        subject,
                        "overtaken",
                        dumps({"by": said_by(event)}),
                    )
                )
            for idx, claim in enumerate(doc.get("claims") or ()):
                body = {
                    "subject": claim["subject"],
                    "value": claim["value"],
                    "valid_until": norm_time(claim.get("valid_until")),
                    "said_by": said_by(event),
                }
                claims.append((event.stream, event.position, idx, claim["subject"], dumps(body)))
        tx.insert(CLAIMS, claims)
        tx.insert(ENDINGS, endings)


def claims_of(tx: Tx, streams: Sequence[str], now: str) -> dict[str, list[dict[str, Any]]]:
    """Claims in force and the ones that ended (superseded, replaced, overtaken, expired)."""
    where = f"stream IN ({marks(streams)})"
    steps: list[tuple[int, int, int, str, str, dict[str, Any]]] = []
    for row in tx.execute(f"SELECT * FROM {{s}}view_claims_endings WHERE {where}", streams):
        steps.append((row["position"], 0, 0, row["subject"], row["how"], orjson.loads(row["doc"])))
    for row in tx.execute(f"SELECT * FROM {{s}}view_claims WHERE {where}", streams):
        steps.append(
            (row["position"], 1, row["idx"], row["subject"], "claim", orjson.loads(row["doc"]))
        )
    steps.sort(key=lambda step: step[:3])
    current: dict[str, dict[str, Any]] = {}
    ended: list[dict[str, Any]] = []
    for _, _, _, subject, how, doc in steps:
        standing = current.get(subject)
        if how == "claim":
            if standing is not None:
                ended.append({**standing, "status": "replaced", "ended_by": doc["said_by"]})
            current[subject] = doc
        elif standing is not None:
            ended.append(
                {
                    **standing,
                    "status": how,
                    "ended_by": doc["by"],
                    **({"reason": doc["reason"]} if "reason" in doc else {}),
                }
            )
            del current[subject]
    in_force = []
    for subject in sorted(current):
        claim = current[subject]
        if claim["valid_until"] is not None and claim["valid_until"] <= now:
            ended.append({**claim, "status": "expired"})
        else:
            in_force.append({**claim, "status": "in_force"})
    ended.sort(key=lambda claim: claim["said_by"]["recorded_at"], reverse=True)
    return {"claims": in_force, "ended": ended}
