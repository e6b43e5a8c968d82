"""Open items: what the company owes each customer, with due times from the SLA policy.

Kinds: a service request (`repair`, `complaint`, `question`) until resolved; a message awaiting
a reply (`reply`: an email or web form that wants one; `callback`: a call that asked for one)
until an outbound personal contact answers it (one naming it in `in_reply_to`, or, naming
none, any outbound personal contact that happened later); a `promise` until kept; a
`registration` until confirmed. Closing events that arrive before their opening leave a
closed row, so the late opening does not reopen it. Overdue is judged when read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from hub.touchpoints import REGISTRY
from projections.base import (
    Event,
    Members,
    View,
    dumps,
    marks,
    members_table,
    norm_time,
    parse_time,
)
from projections.sla import SlaPolicy
from projections.store import Table, Tx

ITEMS = Table(
    "view_open_items",
    (
        ("stream", "text"),
        ("item_id", "text"),
        ("kind", "text"),
        ("priority", "text"),
        ("channel", "text"),
        ("assignee", "text"),
        ("opened_at", "text"),
        ("due_at", "text"),
        ("is_open", "bigint"),
        ("closed_at", "text"),
        ("seconds", "double"),
        ("position", "bigint"),
        ("doc", "text"),
    ),
    key=("stream", "item_id"),
    indexes=(
        ("is_open", "due_at"),
        ("is_open", "kind", "due_at"),
        ("stream", "is_open"),
        # queues by channel and by assignee, in due order; service levels by opening time
        ("is_open", "channel", "due_at"),
        ("is_open", "assignee", "due_at"),
        ("opened_at",),
    ),
)
CONTACTS = Table(
    "view_open_items_contacts",
    (("stream", "text"), ("last_outbound_at", "text"), ("touchpoint_id", "text")),
    key=("stream",),
)
MEMBERS = members_table("open_items")
REPLY_KINDS = ("reply", "callback")
CLOSERS = {
    "service.resolved": ("service", "request_id"),
    "promise.kept": ("promise", "promise_id"),
    "registration.confirmed": ("registration", "event_id"),
}


def is_outbound_personal(event: Event) -> bool:
    kind = REGISTRY[event.type or ""]
    if not kind.outbound or kind.marketing:
        return False
    return not (event.type == "email.sent" and event.doc["data"].get("category") == "marketing")


def _opening(event: Event) -> tuple[str, str, str | None] | None:
    """(item id, kind, priority) of the item this touchpoint opens, if any."""
    data = event.doc["data"]
    match event.type:
        case "service.opened":
            return (
                f"service:{data['request_id']}",
                data.get("kind", "question"),
                data.get("priority", "normal"),
            )
        case "email.received" | "web.form_submitted" if data.get("wants_reply", True):
            return f"reply:{event.doc['touchpoint_id']}", "reply", None
        case "call.inbound" if data.get("callback_requested"):
            return f"reply:{event.doc['touchpoint_id']}", "callback", None
        case "promise.made":
            return f"promise:{data['promise_id']}", "promise", None
        case "web.registered":
            return f"registration:{data['event_id']}", "registration", None
    return None


def _assignee(event: Event) -> str | None:
    assignee = event.doc["data"].get("assignee")
    if isinstance(assignee, str):
        return assignee
    actor = event.doc.get("actor") or {}
    return actor.get("id") if actor.get("kind") == "agent" else None


class OpenItems(View):
    name = "open_items"
    tables = (ITEMS, CONTACTS, MEMBERS)

    def __init__(self, policy: SlaPolicy | None = None):
        self.policy = policy or SlaPolicy()
        self.members = Members(MEMBERS)

    def apply(self, tx: Tx, events: Sequence[Event]) -> None:
        segment: list[Event] = []
        for event in events:
            if event.kind == "touchpoint":
                segment.append(event)
            elif event.kind in ("merged_into", "unmerged"):
                self._apply_segment(tx, segment)  # groups change here: settle what came before
                segment = []
                self.members.apply(tx, event)
        self._apply_segment(tx, segment)

    def _apply_segment(self, tx: Tx, events: list[Event]) -> None:
        if not events:
            return
        page = _Page(tx, self.members.groups(tx, {e.stream for e in events}))
        wanted = set()
        for event in events:
            opening = _opening(event)
            if opening:
                wanted.add(opening[0])
            closer = CLOSERS.get(event.type or "")
            if closer:
                wanted.add(f"{closer[0]}:{event.doc['data'][closer[1]]}")
        page.load(wanted)
        for event in events:
            self._touchpoint(page, event)
        page.save()

    def _touchpoint(self, page: _Page, event: Event) -> None:
        at = event.occurred_at
        opening = _opening(event)
        if opening:
            item_id, kind, priority = opening
            found = page.find(event.stream, item_id)
            row = found or {
                "stream": event.stream,
                "item_id": item_id,
                "is_open": 1,
                "closed_at": None,
                "seconds": None,
                "doc": {},
            }
            due = self.policy.due(kind, priority, parse_time(at))
            if event.type == "promise.made" and event.doc["data"].get("due"):
                due = datetime.fromisoformat(event.doc["data"]["due"])
            row.update(
                kind=kind,
                priority=priority,
                channel=event.doc["channel"],
                assignee=_assignee(event),
                opened_at=at,
                due_at=norm_time(due),
                position=event.position,
            )
            row["doc"] = {**row["doc"], **_details(event)}
            if kind in REPLY_KINDS and found is None:
                answer = page.last_outbound(event.stream)
                if answer and answer[0] >= at:
                    _close(row, answer[0], answer[1])
            if row["closed_at"] is not None and row["seconds"] is None:
                _close(row, row["closed_at"], row["doc"].get("closed_by"))
            page.put(row)
        closer = CLOSERS.get(event.type or "")
        if closer:
            item_id = f"{closer[0]}:{event.doc['data'][closer[1]]}"
            shut = page.find(event.stream, item_id)
            if shut is None:
                shut = {
                    "stream": event.stream,
                    "item_id": item_id,
                    "kind": closer[0],
                    "priority": None,
                    "channel": event.doc["channel"],
                    "assignee": None,
                    "opened_at": None,
                    "due_at": None,
                    "is_open": 0,
                    "closed_at": None,
                    "seconds": None,
                    "position": event.position,
                    "doc": {},
                }
            if shut["is_open"] or shut["closed_at"] is None:
                _close(shut, at, event.doc["touchpoint_id"])
                page.put(shut)
        if event.type == "service.updated" and isinstance(event.doc["data"].get("assignee"), str):
            request = page.find(event.stream, f"service:{event.doc['data']['request_id']}")
            if request is not None:
                request["assignee"] = event.doc["data"]["assignee"]
                page.put(request)
        if is_outbound_personal(event):
            self._answer(page, event, at)

    def _answer(self, page: _Page, event: Event, at: str) -> None:
        named = set(event.doc.get("in_reply_to") or ())
        for row in page.open_replies(event.stream):
            if named and not named & set(row["doc"].get("refs", ())):
                continue
            if not named and row["opened_at"] > at:
                continue
            _close(row, at, event.doc["touchpoint_id"])
            page.put(row)
        if not named:
            page.contact(event.stream, at, event.doc["touchpoint_id"])


def _details(event: Event) -> dict[str, Any]:
    data = event.doc["data"]
    doc: dict[str, Any] = {"opened_by": event.doc["touchpoint_id"], "type": event.type}
    for name in (
        "subject",
        "what",
        "request_id",
        "promise_id",
        "event_id",
        "event_name",
        "summary",
        "form",
    ):
        if name in data:
            doc[name] = data[name]
    if event.type in ("email.received", "web.form_submitted", "call.inbound"):
        refs = [event.doc["touchpoint_id"], f"{event.doc['channel']}:{event.doc['source_id']}"]
        if data.get("message_id"):
            refs.append(data["message_id"])
        doc["refs"] = refs
    return doc


def _close(row: dict[str, Any], at: str, by: str | None) -> None:
    row["is_open"] = 0
    row["closed_at"] = at
    row["doc"] = {**row["doc"], "closed_by": by}
    if row.get("opened_at"):
        row["seconds"] = max(0.0, (parse_time(at) - parse_time(row["opened_at"])).total_seconds())


class _Page:
    """The rows one run of events may touch, loaded at once and written back at once."""

    def __init__(self, tx: Tx, groups: dict[str, list[str]]):
        self.tx = tx
        self.groups = groups
        self.streams = sorted({s for group in groups.values() for s in group})
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.contacts: dict[str, tuple[str, str]] = {}
        self.dirty: set[tuple[str, str]] = set()
        self.replies: dict[str, dict[str, dict[str, Any]]] = {}  # stream → open replies by id
        self.dirty_contacts: set[str] = set()

    def load(self, item_ids: set[str]) -> None:
        rows = self.tx.chunked(
            "SELECT * FROM {s}view_open_items WHERE stream IN ({in}) AND is_open = 1",
            self.streams,
        )
        if item_ids:
            ids = sorted(item_ids)
            rows += (
                self.tx.chunked(
                    f"SELECT * FROM {{s}}view_open_items WHERE stream IN ({{in}}) "
                    f"AND item_id IN ({marks(ids)})",
                    self.streams,
                    ids,
                )
                if len(ids) <= 400
                else self.tx.chunked(
                    "SELECT * FROM {s}view_open_items WHERE stream IN ({in})", self.streams
                )
            )
        for row in rows:
            record = dict(row)
            record["doc"] = orjson.loads(record["doc"])
            self._keep(record)
        for row in self.tx.chunked(
            "SELECT * FROM {s}view_open_items_contacts WHERE stream IN ({in})", self.streams
        ):
            self.contacts[row["stream"]] = (row["last_outbound_at"], row["touchpoint_id"])

    def group(self, stream: str) -> list[str]:
        return self.groups.get(stream, [stream])

    def find(self, stream: str, item_id: str) -> dict[str, Any] | None:
        for member in self.group(stream):
            row = self.rows.get((member, item_id))
            if row is not None:
                return row
        return None

    def _keep(self, row: dict[str, Any]) -> None:
        self.rows[(row["stream"], row["item_id"])] = row
        replies = self.replies.setdefault(row["stream"], {})
        if row["is_open"] and row["kind"] in REPLY_KINDS:
            replies[row["item_id"]] = row
        else:
            replies.pop(row["item_id"], None)

    def put(self, row: dict[str, Any]) -> None:
        self._keep(row)
        self.dirty.add((row["stream"], row["item_id"]))

    def open_replies(self, stream: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for member in self.group(stream):
            found += self.replies.get(member, {}).values()
        return found

    def last_outbound(self, stream: str) -> tuple[str, str] | None:
        found = [self.contacts[m] for m in self.group(stream) if m in self.contacts]
        return max(found) if found else None

    def contact(self, stream: str, at: str, touchpoint_id: str) -> None:
        current = self.contacts.get(stream)
        if current is None or current[0] < at:
            self.contacts[stream] = (at, touchpoint_id)
            self.dirty_contacts.add(stream)

    def save(self) -> None:
        rows = []
        names = ITEMS.column_names
        doc_at = names.index("doc")
        for key in sorted(self.dirty):
            row = self.rows[key]
            values = [row.get(name) for name in names]  # a list comprehension: no generator
            values[doc_at] = dumps(row["doc"])
            rows.append(tuple(values))
        self.tx.upsert(ITEMS, rows)
        self.tx.upsert(CONTACTS, [(s, *self.contacts[s]) for s in sorted(self.dirty_contacts)])


def _public(row: Any, now: str) -> dict[str, Any]:
    doc = orjson.loads(row["doc"])
    is_open = bool(row["is_open"])
    due = row["due_at"]
    return {
        "item_id": row["item_id"],
        "customer_id": row["stream"],
        "kind": row["kind"],
        "priority": row["priority"],
        "channel": row["channel"],
        "assignee": row["assignee"],
        "opened_at": row["opened_at"],
        "due_at": due,
        "open": is_open,
        "overdue": bool(is_open and due is not None and due < now),
        "closed_at": row["closed_at"],
        "breached": bool(due is not None and (row["closed_at"] or now) > due),
        **{k: v for k, v in doc.items() if k != "refs"},
    }


def customer_items(tx: Tx, streams: Sequence[str], now: str, include_closed: bool) -> list[Any]:
    """The open items of one customer's streams (and the closed ones on request), by due."""
    state = "" if include_closed else " AND is_open = 1"
    rows = tx.execute(
        f"SELECT * FROM {{s}}view_open_items WHERE stream IN ({marks(streams)}){state}",
        list(streams),
    )
    items = [_public(row, now) for row in rows if row["opened_at"] is not None]
    items.sort(key=lambda item: (item["due_at"] or "", item["item_id"]))
    return items


def open_count(tx: Tx, streams: Sequence[str]) -> int:
    rows = tx.execute(
        f"SELECT COUNT(*) AS n FROM {{s}}view_open_items WHERE stream IN ({marks(streams)}) "
        "AND is_open = 1 AND opened_at IS NOT NULL",
        list(streams),
    )
    return int(rows[0]["n"])


def queue(
    tx: Tx,
    now: str,
    *,
    kinds: Sequence[str] = (),
    channels: Sequence[str] = (),
    assignee: str | None = None,
    overdue: bool | None = None,
    limit: int = 100,
    after: tuple[str, str, str] | None = None,
) -> list[dict[str, Any]]:
    """Open items across customers, most urgent first (by due time)."""
    where = ["is_open = 1", "opened_at IS NOT NULL"]
    params: list[Any] = []
    if kinds:
        where.append(f"kind IN ({marks(kinds)})")
        params += kinds
    if channels:
        where.append(f"channel IN ({marks(channels)})")
        params += channels
    if assignee is not None:
        where.append("assignee = ?")
        params.append(assignee)
    if overdue is True:
        where.append("due_at < ?")
        params.append(now)
    elif overdue is False:
        where.append("due_at >= ?")
        params.append(now)
    if after is not None:
        where.append("(due_at, stream, item_id) > (?, ?, ?)")  # one range of the index
        params += [after[0], after[1], after[2]]
    rows = tx.execute(
        f"SELECT * FROM {{s}}view_open_items WHERE {' AND '.join(where)} "
        "ORDER BY due_at, stream, item_id LIMIT ?",
        [*params, limit],
    )
    items = [_public(row, now) for row in rows]
    survivors = {
        row["stream"]: row["merged_into"]
        for row in tx.chunked(
            "SELECT stream, merged_into FROM {s}view_open_items_members WHERE stream IN ({in})",
            sorted({item["customer_id"] for item in items}),
        )
    }
    for item in items:
        if item["customer_id"] in survivors:
            item["merged_into"] = survivors[item["customer_id"]]
    return items


def closed_items(tx: Tx, since: str | None, until: str | None) -> list[Any]:
    """Items opened in the window, for the analytics of response and resolution times."""
    where, params = ["opened_at IS NOT NULL"], []
    if since:
        where.append("opened_at >= ?")
        params.append(since)
    if until:
        where.append("opened_at < ?")
        params.append(until)
    return tx.execute(
        "SELECT kind, channel, assignee, opened_at, due_at, is_open, closed_at, seconds "
        f"FROM {{s}}view_open_items WHERE {' AND '.join(where)}",
        params,
    )
