"""What the hub knows of one customer: facts, claims, consent, material sent, promises.

The state is evolved only by recorded touchpoints (`apply_touchpoint`), so replaying a
stream rebuilds it exactly. The consistency rules read it; they never change it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

MONEY_TEXT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z]{3})\s*$")


def canonical(value: Any) -> Any:
    """A comparable form of a claim or fact value: amounts by value, text by case-folded words."""
    if isinstance(value, dict) and "amount" in value and "currency" in value:
        try:
            return ("money", Decimal(str(value["amount"])), str(value["currency"]).upper())
        except InvalidOperation:
            return ("text", str(value))
    if isinstance(value, str):
        money = MONEY_TEXT.match(value)
        if money:
            return ("money", Decimal(money.group(1)), money.group(2).upper())
        return ("text", " ".join(value.split()).casefold())
    if isinstance(value, bool) or value is None:
        return ("plain", value)
    if isinstance(value, int | float):
        return ("number", Decimal(str(value)))
    return ("plain", repr(value))


def same_value(a: Any, b: Any) -> bool:
    return bool(canonical(a) == canonical(b))


@dataclass
class ClaimRecord:
    """The latest claim on one subject, and whether it still stands."""

    subject: str
    value: Any
    valid_until: str | None
    said_by: dict[str, Any]
    superseded_by: str | None = None
    overtaken_by: str | None = None

    def in_force_at(self, moment: datetime) -> bool:
        if self.superseded_by or self.overtaken_by:
            return False
        return self.valid_until is None or datetime.fromisoformat(self.valid_until) > moment


@dataclass
class CustomerState:
    """Everything the consistency rules read about one customer."""

    identities: set[str] = field(default_factory=set)
    claims: dict[str, ClaimRecord] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    consent: dict[str, dict[str, Any]] = field(default_factory=dict)
    assets_sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    promises: dict[str, dict[str, Any]] = field(default_factory=dict)
    touchpoints: int = 0

    def apply_touchpoint(self, record: dict[str, Any]) -> None:
        """Evolve the state by one recorded touchpoint (the event's fields)."""
        ref = reference(record)
        data = record["data"]
        kind = record["type"]
        self.touchpoints += 1
        self.identities.update(record.get("identities", ()))
        FACT_APPLIERS.get(kind, _no_fact)(self, data, ref)
        if kind in ("marketing.sent", "email.sent") and data.get("asset"):
            self.assets_sent.setdefault(data["asset"], ref)
        for subject in record.get("supersedes", ()):
            if subject in self.claims:
                self.claims[subject].superseded_by = record["touchpoint_id"]
        for claim in record.get("claims", ()):
            self.claims[claim["subject"]] = ClaimRecord(
                subject=claim["subject"],
                value=claim["value"],
                valid_until=claim.get("valid_until"),
                said_by=ref,
            )

    def to_doc(self) -> dict[str, Any]:
        """The state as plain JSON values, for a snapshot."""
        doc = {name: getattr(self, name) for name in _DICT_FIELDS}
        doc["claims"] = {subject: vars(claim) for subject, claim in self.claims.items()}
        doc["identities"] = sorted(self.identities)
        doc["touchpoints"] = self.touchpoints
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> CustomerState:
        """The state a snapshot's `to_doc` holds."""
        return cls(
            identities=set(doc["identities"]),
            claims={subject: ClaimRecord(**claim) for subject, claim in doc["claims"].items()},
            touchpoints=doc["touchpoints"],
            **{name: doc[name] for name in _DICT_FIELDS},
        )

    def weight(self) -> int:
        """How much this state holds, in facts: what bounds a cache of states by memory."""
        return (
            1
            + len(self.identities)
            + len(self.claims)
            + sum(len(getattr(self, name)) for name in _DICT_FIELDS)
        )

    def overtake(self, subject: str, ref: dict[str, Any]) -> None:
        """A fact about `subject` changed: earlier claims on it are history, not in force."""
        claim = self.claims.get(subject)
        if claim is not None and claim.overtaken_by is None:
            claim.overtaken_by = ref["touchpoint_id"]

    def open_requests(self) -> dict[str, dict[str, Any]]:
        return {rid: r for rid, r in self.requests.items() if r["open"]}

    def absorb(self, other: CustomerState) -> None:
        """Fold a merged-in customer's state into this one (the later statement wins)."""
        self.identities |= other.identities
        for name in ("orders", "requests", "consent", "assets_sent", "promises"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for key, value in theirs.items():
                if key not in mine or _later(value, mine[key]):
                    mine[key] = value
        for subject, claim in other.claims.items():
            if subject not in self.claims or _later(claim.said_by, self.claims[subject].said_by):
                self.claims[subject] = claim
        self.touchpoints += other.touchpoints


_DICT_FIELDS = ("orders", "requests", "consent", "assets_sent", "promises")


def reference(record: dict[str, Any]) -> dict[str, Any]:
    """How a conflict names an earlier touchpoint: what, which channel, who, when."""
    return {
        "touchpoint_id": record["touchpoint_id"],
        "type": record["type"],
        "channel": record["channel"],
        "actor": record.get("actor"),
        "occurred_at": record["occurred_at"],
        "recorded_at": record.get("recorded_at"),
    }


def _later(a: dict[str, Any], b: dict[str, Any]) -> bool:
    a_ref, b_ref = a.get("ref", a), b.get("ref", b)
    return str(a_ref.get("recorded_at") or "") > str(b_ref.get("recorded_at") or "")


def _no_fact(state: CustomerState, data: dict[str, Any], ref: dict[str, Any]) -> None:
    return None


def _order_placed(state: CustomerState, data: dict[str, Any], ref: dict[str, Any]) -> None:
    order = state.orders.setdefault(data["order_id"], {"status": "placed"})
    order.update(total=data["total"], ref=ref)
    state.overtake(f"order:{data['order_id']}:total", ref)


def _order_status(state: CustomerState, data: dict[str, Any], ref: dict[str, Any]) -> None:
    order = state.orders.setdefault(data["order_id"], {"total": None})
    order.update(status=data["status"], ref=ref)
    state.overtake(f"order:{data['order_id']}:status", ref)


def _service_opened(state: CustomerState, data: dict[str, Any], ref: dict[str, Any]) -> None:
    request = state.requests.setdefault(data["request_id"], {"visit_date": None})
    request.update(status="open", open=True, kind=data["kind"], priority=data["priority"], ref=ref)


def _service_updated(state: CustomerState, data: dict[str, Any], ref: dict[str, Any]) -> None:
    request = _request(state, data["request_id"], ref)
    request.update(status=data["status"], ref=ref)
    state.overtake(f"service:{data['request_id']}:status", ref)


def _visit_scheduled(state: CustomerState, data: dict[str, Any], ref: dict[str, Any]) -> None:
    request = _request(state, data["request_id"], ref)
    request.update(visit_date=data["visit_date"], ref=ref)
    state.overtake(f"service:{data['request_id']}:visit_date", ref)


def _service_resolved(state: CustomerState, data: dict[str, Any], ref: dict[str, Any]) -> None:
    request = _request(state, data["request_id"], ref)
    request.update(status="resolved", open=False, ref=ref)
    state.overtake(f"service:{data['request_id']}:status", ref)


def _request(state: CustomerState, request_id: str, ref: dict[str, Any]) -> dict[str, Any]:
    """The request, created from a later update when its opening has not reached the hub."""
    return state.requests.setdefault(
        request_id,
        {
            "status": "open",
            "open": True,
            "kind": "question",
            "priority": "normal",
            "visit_date": None,
            "ref": ref,
        },
    )


def _consent(state: CustomerState, data: dict[str, Any], ref: dict[str, Any]) -> None:
    state.consent[data["purpose"]] = {"granted": data["granted"], "ref": ref}


def _promise_made(state: CustomerState, data: dict[str, Any], ref: dict[str, Any]) -> None:
    state.promises[data["promise_id"]] = {
        "what": data["what"],
        "due": data.get("due"),
        "kept": False,
        "ref": ref,
    }


def _promise_kept(state: CustomerState, data: dict[str, Any], ref: dict[str, Any]) -> None:
    promise = state.promises.setdefault(data["promise_id"], {"what": None, "due": None})
    promise.update(kept=True, kept_by=ref)


FACT_APPLIERS = {
    "order.placed": _order_placed,
    "order.status_changed": _order_status,
    "service.opened": _service_opened,
    "service.updated": _service_updated,
    "service.visit_scheduled": _visit_scheduled,
    "service.resolved": _service_resolved,
    "consent.changed": _consent,
    "promise.made": _promise_made,
    "promise.kept": _promise_kept,
}
