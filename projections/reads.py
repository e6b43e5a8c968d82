"""Reads of one customer across views: the same queries serve the live views and the replays
of `as_of`. A survivor's reads include the customers merged into it; a merged-away customer's
reads show its own touchpoints and say where it went (`merged_into`)."""

from __future__ import annotations

from typing import Any

import orjson

from hub.errors import CustomerNotFound
from projections.claims import claims_of
from projections.open_items import customer_items, open_count
from projections.profile import profile_of
from projections.store import Tx
from projections.timeline import timeline

# Which views each read depends on (for `min_position` and the position header).
PROFILE_VIEWS = ("profile", "open_items")
TIMELINE_VIEWS = ("profile", "timeline")
OPEN_ITEM_VIEWS = ("profile", "open_items")
CLAIM_VIEWS = ("profile", "claims", "open_items")


def streams_of(tx: Tx, customer_id: str) -> tuple[list[str], str | None]:
    """The customer's stream and those merged into it (at any depth), and where it went."""
    rows = tx.execute(
        "SELECT p.stream, l.merged_into, l.merged_from FROM {s}view_profile p "
        "LEFT JOIN {s}view_profile_links l ON l.stream = p.stream WHERE p.stream = ?",
        [customer_id],
    )
    if not rows:
        raise CustomerNotFound(customer_id)
    links = {customer_id: rows[0]}
    streams, todo = [customer_id], _merged_from(rows[0])
    while todo:
        found = tx.chunked("SELECT * FROM {s}view_profile_links WHERE stream IN ({in})", todo)
        links.update((row["stream"], row) for row in found)
        fresh = [member for member in dict.fromkeys(todo) if member not in streams]
        streams += fresh
        todo = [m for member in fresh for m in _merged_from(links.get(member))]
    own = links.get(customer_id)
    return streams, own["merged_into"] if own else None


def _merged_from(link: Any) -> list[str]:
    return orjson.loads(link["merged_from"]) if link and link["merged_from"] else []


def _where(merged_into: str | None) -> dict[str, Any]:
    return {"merged_into": merged_into} if merged_into else {}


def read_profile(tx: Tx, customer_id: str) -> dict[str, Any]:
    streams, _ = streams_of(tx, customer_id)
    doc = profile_of(tx, streams)
    if doc is None:
        raise CustomerNotFound(customer_id)
    doc["open_items"] = open_count(tx, streams)
    return doc


def read_timeline(tx: Tx, customer_id: str, **filters: Any) -> dict[str, Any]:
    streams, merged_into = streams_of(tx, customer_id)
    return {"customer_id": customer_id, **_where(merged_into), **timeline(tx, streams, **filters)}


def read_open_items(
    tx: Tx, customer_id: str, now: str, include_closed: bool = False
) -> dict[str, Any]:
    streams, merged_into = streams_of(tx, customer_id)
    items = customer_items(tx, streams, now, include_closed)
    return {"customer_id": customer_id, **_where(merged_into), "open_items": items}


def read_claims(tx: Tx, customer_id: str, now: str) -> dict[str, Any]:
    streams, merged_into = streams_of(tx, customer_id)
    promises = [
        {
            k: item[k]
            for k in (
                "item_id",
                "what",
                "due_at",
                "open",
                "overdue",
                "closed_at",
                "opened_at",
                "channel",
                "assignee",
                "opened_by",
            )
            if k in item
        }
        for item in customer_items(tx, streams, now, include_closed=True)
        if item["kind"] == "promise"
    ]
    return {
        "customer_id": customer_id,
        **_where(merged_into),
        **claims_of(tx, streams, now),
        "promises": promises,
    }
