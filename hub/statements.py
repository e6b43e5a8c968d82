"""What the company had told a customer by a moment: every claim and promise, with its fate."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from hub.state import CustomerState


def statements(
    records: Iterable[dict[str, Any]], state: CustomerState, as_of: datetime
) -> list[dict[str, Any]]:
    """Every claim and promise the company had told the customer by `as_of`, with its status.

    `records` are the customer's touchpoints recorded by then (oldest first); `state` the
    customer's state replayed to that moment (it knows which claims facts have overtaken).
    """
    told: list[dict[str, Any]] = []
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        base = {
            "touchpoint_id": record["touchpoint_id"],
            "type": record["type"],
            "channel": record["channel"],
            "actor": record.get("actor"),
            "occurred_at": record["occurred_at"],
            "recorded_at": record["recorded_at"],
        }
        for subject in record.get("supersedes", ()):
            if subject in latest:
                latest[subject].update(
                    status="superseded",
                    superseded_by=record["touchpoint_id"],
                    correction_reason=record.get("correction_reason"),
                )
        for claim in record.get("claims", ()):
            earlier = latest.get(claim["subject"])
            if earlier is not None and earlier["status"] == "in force":
                earlier["status"] = "replaced by a later claim"
            statement = {
                **base,
                "kind": "claim",
                "subject": claim["subject"],
                "value": claim["value"],
                "valid_until": claim.get("valid_until"),
                "status": "in force",
            }
            latest[claim["subject"]] = statement
            told.append(statement)
        if record["type"] == "promise.made":
            promise_id = record["data"]["promise_id"]
            kept = state.promises.get(promise_id, {}).get("kept", False)
            told.append(
                {
                    **base,
                    "kind": "promise",
                    "subject": f"promise:{promise_id}",
                    "value": record["data"].get("what"),
                    "due": record["data"].get("due"),
                    "status": "kept" if kept else "open",
                }
            )
    for subject, statement in latest.items():
        current = state.claims.get(subject)
        if statement["status"] != "in force" or current is None:
            continue
        if current.overtaken_by:
            statement.update(status="overtaken by a fact", overtaken_by=current.overtaken_by)
        elif not current.in_force_at(as_of):
            statement["status"] = "expired"
    return told
