"""Reads of one customer across views: the same queries serve the live views and the replays
of `as_of`. A survivor's reads include the customers merged into it; a merged-away customer's
reads show its own touchpoints and say where it went (`merged_into`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from hub.errors import CustomerNotFound
from projections.base import marks
from projections.claims import claims_of
from projections.conflicts import conflicts
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


# -- reads the dashboard needs beside the JSON API's ------------------------------------------


def read_orders(tx: Tx, customer_id: str) -> dict[str, Any]:
    """The customer's orders (with those of customers merged into it): id → status, total."""
    streams, _ = streams_of(tx, customer_id)
    rows = tx.execute(
        f"SELECT stream, doc FROM {{s}}view_profile WHERE stream IN ({marks(streams)})", streams
    )
    by_stream = {row["stream"]: orjson.loads(row["doc"]) for row in rows}
    orders: dict[str, Any] = {}
    for stream in streams:
        orders.update(by_stream.get(stream, {}).get("orders", {}))
    return orders


def customer_names(tx: Tx, customer_ids: Sequence[str]) -> dict[str, str]:
    """Display names of customers (the latest `name`, else an identity), for lists."""
    names: dict[str, str] = {}
    for row in tx.chunked(
        "SELECT stream, doc FROM {s}view_profile WHERE stream IN ({in})", sorted(set(customer_ids))
    ):
        doc = orjson.loads(row["doc"])
        name = (doc["contact"].get("name") or {}).get("value")
        if not isinstance(name, str) or not name:
            name = doc["identities"][0].partition(":")[2] if doc["identities"] else ""
        names[row["stream"]] = name
    return names


def customer_position(tx: Tx, customer_id: str) -> int:
    """The last position that changed what the customer's pages show (touchpoints, conflicts)."""
    return _last_position(tx, streams_of(tx, customer_id)[0])


def _last_position(tx: Tx, streams: Sequence[str]) -> int:
    found = 0
    for table, column in (("view_timeline", "stream"), ("view_conflicts", "customer")):
        rows = tx.execute(
            f"SELECT MAX(position) AS p FROM {{s}}{table} WHERE {column} IN ({marks(streams)})",
            streams,
        )
        found = max(found, int(rows[0]["p"] or 0))
    return found


def queue_counts(tx: Tx, now: str) -> dict[str, dict[str, int]]:
    """Open items per kind: how many, and how many of them are overdue."""
    # An open row always has its opening (rows without one are closers that came first), so
    # `is_open = 1` alone selects the queue, and the (is_open, kind, due_at) index covers it.
    rows = tx.execute(
        "SELECT kind, COUNT(*) AS n, SUM(CASE WHEN due_at < ? THEN 1 ELSE 0 END) AS late "
        "FROM {s}view_open_items WHERE is_open = 1 GROUP BY kind",
        [now],
    )
    return {row["kind"]: {"open": int(row["n"]), "overdue": int(row["late"] or 0)} for row in rows}


def conflict_summary(tx: Tx) -> dict[str, Any]:
    """Conflicts counted by rule and by the attempt's channel, each split by outcome."""
    by_rule: dict[str, dict[str, int]] = {}
    by_channel: dict[str, dict[str, int]] = {}
    for row in tx.execute("SELECT rule, outcome, doc FROM {s}view_conflicts"):
        channel = (orjson.loads(row["doc"]).get("touchpoint") or {}).get("channel") or "?"
        for counts, key in ((by_rule, row["rule"] or "?"), (by_channel, channel)):
            group = counts.setdefault(key, {"rejected": 0, "detected": 0})
            group[row["outcome"]] = group.get(row["outcome"], 0) + 1
    return {"by_rule": by_rule, "by_channel": by_channel}


def claims_in_force(
    tx: Tx, streams: Sequence[str], now: str, latest: int | None = None
) -> list[dict[str, Any]]:
    """The `claims` of `claims_of` (same fold, same order) without the ended ones, or only the
    `latest` few, newest first. The fold runs over keys alone and only the documents of
    standing claims are opened, so a customer with thousands of statements reads fast."""
    where = f"stream IN ({marks(streams)})"
    steps: list[tuple[int, int, int, str, str]] = [
        (row["position"], 0, 0, row["subject"], "")
        for row in tx.execute(
            f"SELECT position, subject FROM {{s}}view_claims_endings WHERE {where}", streams
        )
    ]
    steps += [
        (row["position"], 1, row["idx"], row["subject"], row["stream"])
        for row in tx.execute(
            f"SELECT stream, position, idx, subject FROM {{s}}view_claims WHERE {where}", streams
        )
    ]
    steps.sort(key=lambda step: step[:3])
    standing: dict[str, tuple[str, int, int]] = {}
    for position, is_claim, idx, subject, stream in steps:
        if is_claim:
            standing[subject] = (stream, position, idx)
        else:
            standing.pop(subject, None)
    if latest is None:
        order = sorted(standing)
    else:
        order = sorted(standing, key=lambda subject: standing[subject][1:], reverse=True)
    chunk = 400 if latest is None else 2 * latest  # expired claims may need a few more
    in_force: list[dict[str, Any]] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        positions = sorted({standing[subject][1] for subject in part})
        raw = {
            (row["stream"], row["position"], row["idx"]): row["doc"]
            for row in tx.execute(
                f"SELECT stream, position, idx, doc FROM {{s}}view_claims WHERE {where} "
                f"AND position IN ({marks(positions)})",
                [*streams, *positions],
            )
        }
        for subject in part:
            claim = orjson.loads(raw[standing[subject]])
            if claim["valid_until"] is None or claim["valid_until"] > now:
                in_force.append({**claim, "status": "in_force"})
                if latest is not None and len(in_force) == latest:
                    return in_force
    return in_force


def read_customer_page(
    tx: Tx,
    customer_id: str,
    now: str,
    *,
    channels: Sequence[str] = (),
    cursor: str | None = None,
    claims: int | None = 20,
) -> dict[str, Any]:
    """Everything the customer 360° page shows, in one transaction and one walk of merges:
    profile, orders, open items, the latest `claims` in force (None: all), open promises, a
    timeline page and conflicts."""
    streams, merged_into = streams_of(tx, customer_id)
    profile = profile_of(tx, streams)
    if profile is None:
        raise CustomerNotFound(customer_id)
    items = customer_items(tx, streams, now, include_closed=False)
    profile["open_items"] = len(items)
    profile["merged_into"] = merged_into
    return {
        "profile": profile,
        "orders": read_orders(tx, customer_id),
        "items": items,
        "claims": claims_in_force(tx, streams, now, latest=claims),
        "promises": [item for item in items if item["kind"] == "promise"],
        "timeline": timeline(tx, streams, channels=channels, limit=30, cursor=cursor),
        "conflicts": conflicts(tx, streams=streams, limit=20)["conflicts"],
        "position": _last_position(tx, streams),
    }
