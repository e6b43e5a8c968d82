"""Timeline: every touchpoint of a customer across channels, newest first by `occurred_at`."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import orjson

from hub.errors import InvalidInput
from projections.base import Event, View, dumps, marks
from projections.store import Table, Tx

ENTRIES = Table(
    "view_timeline",
    (
        ("stream", "text"),
        ("occurred_at", "text"),
        ("position", "bigint"),
        ("type", "text"),
        ("channel", "text"),
        ("doc", "text"),
    ),
    key=("stream", "occurred_at", "position"),
)
HIDDEN = ("identities", "new_identities")


class Timeline(View):
    name = "timeline"
    tables = (ENTRIES,)

    def apply(self, tx: Tx, events: Sequence[Event]) -> None:
        tx.insert(ENTRIES, [_row(event) for event in events if event.kind == "touchpoint"])


def _row(event: Event) -> tuple[Any, ...]:
    doc = dict(event.doc)
    for hidden in HIDDEN:
        doc.pop(hidden, None)
    doc["type"] = event.type
    doc["customer_id"] = event.stream
    doc["position"] = event.position
    doc["recorded_at"] = event.recorded_at
    return (
        event.stream,
        event.occurred_at,
        event.position,
        event.type,
        event.doc["channel"],
        dumps(doc),
    )


def encode_cursor(occurred_at: str, position: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([occurred_at, position])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        occurred_at, position = orjson.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        )
        return str(occurred_at), int(position)
    except (ValueError, TypeError):
        raise InvalidInput("cursor", "not a cursor this API gave out") from None


def timeline(
    tx: Tx,
    streams: Sequence[str],
    *,
    channels: Sequence[str] = (),
    types: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """A page of the streams' touchpoints, newest first, and the cursor of the next page."""
    where = [f"stream IN ({marks(streams)})"]
    params: list[Any] = list(streams)
    if channels:
        where.append(f"channel IN ({marks(channels)})")
        params += channels
    if types:
        where.append(f"type IN ({marks(types)})")
        params += types
    if since:
        where.append("occurred_at >= ?")
        params.append(since)
    if until:
        where.append("occurred_at < ?")
        params.append(until)
    if cursor:
        at, position = decode_cursor(cursor)
        # A row comparison is one range of the key's index (an OR of two made PostgreSQL
        # fetch and sort all of a long customer's older entries).
        where.append("(occurred_at, position) < (?, ?)")
        params += [at, position]
    rows = tx.execute(
        f"SELECT occurred_at, position, doc FROM {{s}}view_timeline WHERE {' AND '.join(where)} "
        "ORDER BY occurred_at DESC, position DESC LIMIT ?",
        [*params, limit + 1],
    )
    entries = [orjson.loads(row["doc"]) for row in rows[:limit]]
    following = None
    if len(rows) > limit:
        last = rows[limit - 1]
        following = encode_cursor(last["occurred_at"], last["position"])
    return {"entries": entries, "next_cursor": following}
