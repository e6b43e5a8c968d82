"""Profile: who the customer is, as every channel told it, and where each fact came from.

Contact data (identities and any field of `profile.updated`) is the latest by `occurred_at`,
each with its provenance; consent per purpose is the latest in recorded order, the order the
consent rule enforces. A survivor's profile folds in the customers merged into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson

from projections.base import Event, RowCache, View, dumps, marks
from projections.store import Table, Tx

PROFILES = Table("view_profile", (("stream", "text"), ("doc", "text")), key=("stream",))
# Who a customer absorbed and where it went, beside the document: every read needs them to
# find the customer's streams, and a long customer's document is a hundred kilobytes.
LINKS = Table(
    "view_profile_links",
    (("stream", "text"), ("merged_into", "text"), ("merged_from", "text")),
    key=("stream",),
)
MERGE_KINDS = frozenset(("absorbed", "released", "merged_into", "unmerged"))


def _empty(stream: str) -> dict[str, Any]:
    return {
        "customer_id": stream,
        "identities": [],
        "contact": {},
        "consent": {},
        "first_contact": None,
        "last_contact": None,
        "orders": {},
        "touchpoints": 0,
        "channels": {},
        "merged_into": None,
        "merged_from": [],
        "erased": False,
    }


class Profile(View):
    name = "profile"
    tables = (PROFILES, LINKS)

    def __init__(self, cache_size: int = 5000, cache_entries: int = 50_000):
        # Active customers come back page after page: keep their documents decoded.
        self.cache = RowCache(cache_size, cache_entries)

    def forget(self) -> None:
        self.cache.clear()

    def apply(self, tx: Tx, events: Sequence[Event]) -> None:
        streams = sorted({e.stream for e in events})
        docs: dict[str, dict[str, Any]] = {}
        missing = []
        cache = self.cache if tx.remember else RowCache(0)
        for stream in streams:
            cached = cache.take(stream)
            if cached is None:
                missing.append(stream)
            else:
                docs[stream] = cached
        if missing:
            for row in tx.chunked(
                "SELECT stream, doc FROM {s}view_profile WHERE stream IN ({in})", missing
            ):
                docs[row["stream"]] = orjson.loads(row["doc"])
        linked = set()
        for event in events:
            doc = docs.get(event.stream)
            if doc is None:
                doc = docs[event.stream] = _empty(event.stream)
            _evolve(doc, event)
            if event.kind in MERGE_KINDS:
                linked.add(event.stream)
        tx.upsert(PROFILES, [(stream, dumps(docs[stream])) for stream in streams])
        tx.upsert(
            LINKS,
            [
                (stream, docs[stream]["merged_into"], dumps(docs[stream]["merged_from"]))
                for stream in sorted(linked)
            ],
        )
        if tx.remember:
            for stream in streams:
                self.cache.keep(stream, docs[stream])


def _provenance(event: Event, value: Any, at: str) -> dict[str, Any]:
    return {
        "value": value,
        "channel": event.doc["channel"],
        "touchpoint_id": event.doc["touchpoint_id"],
        "occurred_at": at,
        "recorded_at": event.recorded_at,
    }


def _evolve(doc: dict[str, Any], event: Event) -> None:
    kind, data = event.kind, event.doc
    if kind == "absorbed":
        doc["merged_from"].append(data["other_id"])
    elif kind == "released":
        doc["merged_from"] = [s for s in doc["merged_from"] if s != data["other_id"]]
    elif kind == "merged_into":
        doc["merged_into"] = data["survivor_id"]
    elif kind == "unmerged":
        doc["merged_into"] = None
    elif kind == "erased":
        doc["erased"] = True
    elif kind == "registered":
        doc["created_at"] = event.recorded_at
    elif kind == "touchpoint":
        _touchpoint(doc, event)


def _touchpoint(doc: dict[str, Any], event: Event) -> None:
    at, source = event.occurred_at, event.doc
    fields, channel = source["data"], source["channel"]
    doc["touchpoints"] += 1
    channels = doc["channels"]
    channels[channel] = channels.get(channel, 0) + 1
    first, last = doc["first_contact"], doc["last_contact"]
    if first is None or at < first:
        doc["first_contact"] = at
    if last is None or at > last:
        doc["last_contact"] = at
    identities = source.get("identities")
    if identities:
        mine = doc["identities"]
        known = set(mine)
        added = False
        for identity in identities:
            if identity not in known:
                mine.append(identity)
                known.add(identity)
                added = True
            field, _, value = identity.partition(":")
            _offer(doc, field, event, value, at)
        if added:  # every change sorts it, so it only needs sorting when it grew
            mine.sort()
    kind = event.type
    if kind == "profile.updated":
        for field, value in sorted(fields.items()):
            _offer(doc, field, event, value, at)
    elif kind == "consent.changed":
        doc["consent"][fields["purpose"]] = _provenance(event, fields["granted"], at)
    elif kind == "order.placed":
        order = doc["orders"].setdefault(fields["order_id"], {"status": "placed"})
        order["total"] = fields["total"]
    elif kind == "order.status_changed":
        doc["orders"].setdefault(fields["order_id"], {"total": None})["status"] = fields["status"]


def _wins(current: dict[str, Any] | None, occurred_at: str, recorded_at: str) -> bool:
    """Whether a contact value said at these times replaces `current`: the latest by
    `occurred_at`, then by `recorded_at`; a tie goes to the newcomer."""
    return current is None or (occurred_at, recorded_at) >= (
        current["occurred_at"],
        current["recorded_at"],
    )


def _offer(doc: dict[str, Any], field: str, event: Event, value: Any, at: str) -> None:
    """A value the event says for a contact field, its provenance built only when it wins."""
    if _wins(doc["contact"].get(field), at, event.recorded_at):
        doc["contact"][field] = _provenance(event, value, at)


def combined(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The first profile with the others (customers merged into it) folded in."""
    own = docs[0]
    result = {
        **own,
        "identities": set(own["identities"]),
        "contact": dict(own["contact"]),
        "consent": dict(own["consent"]),
        "orders": dict(own["orders"]),
        "channels": dict(own["channels"]),
    }
    for other in docs[1:]:
        result["identities"] |= set(other["identities"])
        for field, said in other["contact"].items():
            if _wins(result["contact"].get(field), said["occurred_at"], said["recorded_at"]):
                result["contact"][field] = said
        for purpose, said in other["consent"].items():
            mine = result["consent"].get(purpose)
            if mine is None or said["recorded_at"] > mine["recorded_at"]:
                result["consent"][purpose] = said
        for when in ("first_contact", "last_contact"):
            values = [v for v in (result[when], other[when]) if v]
            pick = min if when == "first_contact" else max
            result[when] = pick(values) if values else None
        result["orders"].update(other["orders"])
        result["touchpoints"] += other["touchpoints"]
        for channel, count in other["channels"].items():
            result["channels"][channel] = result["channels"].get(channel, 0) + count
    result["identities"] = sorted(result["identities"])
    return result


def profile_of(tx: Tx, streams: Sequence[str]) -> dict[str, Any] | None:
    """The profile of the first stream with the others folded in; None if unknown."""
    rows = tx.execute(
        f"SELECT * FROM {{s}}view_profile WHERE stream IN ({marks(streams)})", list(streams)
    )
    by_stream = {row["stream"]: orjson.loads(row["doc"]) for row in rows}
    if streams[0] not in by_stream:
        return None
    doc = combined([by_stream[s] for s in streams if s in by_stream])
    orders = doc.pop("orders")
    value: dict[str, Decimal] = {}
    for order in orders.values():
        total = order.get("total")
        if total and order.get("status") not in ("cancelled", "returned"):
            value[total["currency"]] = value.get(total["currency"], Decimal(0)) + Decimal(
                total["amount"]
            )
    doc["orders"] = {
        "count": len(orders),
        "value": [{"amount": str(a), "currency": c} for c, a in sorted(value.items())],
    }
    return doc
