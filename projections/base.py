"""What every projection shares: decoded events, the view contract, merges and times.

Events are decoded straight from the stored JSON (faster than building domain objects), with
personal fields opened by the hub's shredder; the keys of a whole page are fetched at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar

import orjson

from hub.cache import Bounded
from hub.codec import CHAIN
from hub.customer import EVENT_CLASSES
from hub.shred import PERSONAL, Shredder
from hub.store import ScanRow
from projections.store import Table, Tx

TOUCHPOINT_TOPICS = {f"hub.customer:{cls.__name__}": cls.TYPE for cls in EVENT_CLASSES.values()}
OTHER_TOPICS = {
    "hub.customer:Customer.Registered": "registered",
    "hub.customer:Customer.Absorbed": "absorbed",
    "hub.customer:Customer.MergedInto": "merged_into",
    "hub.customer:Customer.Released": "released",
    "hub.customer:Customer.Unmerged": "unmerged",
    "hub.customer:Customer.Erased": "erased",
    "hub.customer:RejectedAttempt.Recorded": "rejected",
    "hub.customer:MergeSuggestion.Suggested": "suggested",
}


def _norm_text(value: str) -> str:
    # Stored times are Python's isoformat of UTC times: `…T08:00:00.123456+00:00`, or without
    # the fraction when it is zero. Those are rewritten as text (most events' two times);
    # any other form (a channel's own offset) is parsed.
    if value.endswith("+00:00") and value[10:11] == "T":
        if len(value) == 32 and value[19] == ".":
            return value[:26] + "Z"
        if len(value) == 25:
            return value[:19] + ".000000Z"
    return _parsed_norm_text(value)


# Times repeat within a page (one commit stamps its events alike; a channel's batch shares an
# occurred_at), rarely beyond it: a small cache, or it fills with every time ever seen.
@lru_cache(maxsize=4096)
def _parsed_norm_text(value: str) -> str:
    return _fixed_width(datetime.fromisoformat(value))


def norm_time(value: str | datetime | None) -> str | None:
    """A time as fixed-width UTC text, so text order is time order in both stores."""
    if value is None:
        return None
    if isinstance(value, str):
        return _norm_text(value)
    return _fixed_width(value)


def _fixed_width(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # an offset pushes it past year 1 or 9999: the end of time it names
        moment = (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)
    # isoformat writes four-digit years (strftime wrote years before 1000 with fewer, which
    # broke the text order), in C and faster than strftime.
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@lru_cache(maxsize=4096)
def parse_time(value: str) -> datetime:
    """The inverse of `norm_time` (fromisoformat is C; strptime was a tenth of a catch-up)."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


@dataclass(slots=True)
class Event:
    """One notification, decoded: `kind` is `touchpoint` or the event's name."""

    position: int
    stream: str
    version: int
    kind: str
    type: str | None
    recorded_at: str
    doc: dict[str, Any]
    occurred_at: str = ""  # touchpoints: when it happened in the channel, normalised


def decode(notifications: Sequence[Any], shredder: Shredder | None) -> list[Event]:
    """The hub events of the library's notifications, in log order (see `decode_rows`)."""
    return decode_rows(
        [
            (n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
            for n in notifications
        ],
        shredder,
    )


def decode_rows(rows: Sequence[ScanRow], shredder: Shredder | None) -> list[Event]:
    """The page's hub events in log order (other topics, e.g. snapshots, are left out), from
    rows of (position, stream, version, topic, state) as `select_rows` reads them."""
    events: list[Event] = []
    owners: set[str] = set()
    for position, stream, version, topic, state in rows:
        touchpoint_type = TOUCHPOINT_TOPICS.get(topic)
        kind = "touchpoint" if touchpoint_type is not None else OTHER_TOPICS.get(topic)
        if kind is None:
            continue
        doc = orjson.loads(state)
        doc.pop(CHAIN, None)
        sealed = doc.get(PERSONAL)
        if sealed:
            owners.update(sealed)
        # Stored times are ISO text: straight to the cached conversion (a call per event).
        recorded_at = _norm_text(doc.pop("timestamp"))
        occurred_at = doc.get("occurred_at")
        events.append(
            Event(
                position,
                stream,
                version,
                kind,
                touchpoint_type,
                recorded_at,
                doc,
                _norm_text(occurred_at) if occurred_at else recorded_at,
            )
        )
    if shredder is not None and owners:
        keys = shredder.keys(owners, create=False)  # one look-up for the page
        for event in events:
            if PERSONAL in event.doc:
                event.doc = shredder.open(event.doc, keys)
    else:
        for event in events:
            event.doc.pop(PERSONAL, None)
    return events


class View:
    """A projection: its tables and how a page of events changes them.

    `apply` gets only events after the view's tracked position, inside the transaction that
    records the new position. Views must be deterministic: a rebuild gives the same rows.
    """

    name: ClassVar[str]
    tables: ClassVar[tuple[Table, ...]]

    def apply(self, tx: Tx, events: Sequence[Event]) -> None:
        raise NotImplementedError

    def clear(self, tx: Tx) -> None:
        for table in self.tables:
            # TRUNCATE leaves no dead rows behind for the rebuild to wade through.
            verb = "TRUNCATE" if tx.postgres else "DELETE FROM"
            tx.execute(f"{verb} {{s}}{table.name}")

    def forget(self) -> None:
        """Drop whatever the view keeps in memory between pages (its rows may have changed
        under it: another runner, a rebuild, a rolled-back transaction)."""


def entries(doc: dict[str, Any]) -> int:
    """A document's weight: one, plus one per entry of its maps and lists."""
    return 1 + sum(len(value) for value in doc.values() if isinstance(value, dict | list))


class RowCache(Bounded[Any]):
    """The most recently used rows of a view, by key, as they stand in its tables: at most
    `size` of them, weighing at most `max_weight` together (a customer's document grows with
    every order, so a bound by count alone would let memory grow for as long as they buy).

    Only valid while nobody else writes the view: the runner calls `View.forget` whenever the
    view's tracked position is not the one it committed itself, and after any failure."""

    def __init__(self, size: int, max_weight: int | None = None):
        super().__init__(size, max_weight, entries)

    take = Bounded.get
    keep = Bounded.put


def members_table(view: str) -> Table:
    """A view's own record of merges (stream → the customer it was merged into)."""
    return Table(
        f"view_{view}_members",
        (("stream", "text"), ("merged_into", "text")),
        key=("stream",),
        indexes=(("merged_into",),),
    )


class Members:
    """Who was merged into whom, as one view saw it (each view keeps its own copy, so any
    view can be rebuilt alone)."""

    def __init__(self, table: Table):
        self.table = table

    def apply(self, tx: Tx, event: Event) -> bool:
        """Record a merge or unmerge; True when the event was one."""
        if event.kind == "merged_into":
            tx.upsert(self.table, [(event.stream, event.doc["survivor_id"])])
            return True
        if event.kind == "unmerged":
            tx.execute(f"DELETE FROM {{s}}{self.table.name} WHERE stream = ?", [event.stream])
            return True
        return False

    def merged_into(self, tx: Tx, stream: str) -> str | None:
        rows = tx.execute(
            f"SELECT merged_into FROM {{s}}{self.table.name} WHERE stream = ?", [stream]
        )
        return rows[0]["merged_into"] if rows else None

    def groups(self, tx: Tx, streams: Iterable[str]) -> dict[str, list[str]]:
        """Each stream's group: itself and every stream merged into it, at any depth."""
        groups = {stream: [stream] for stream in streams}
        frontier = {stream: stream for stream in groups}  # member → the group it belongs to
        while frontier:
            rows = tx.chunked(
                f"SELECT stream, merged_into FROM {{s}}{self.table.name} "
                "WHERE merged_into IN ({in})",
                list(frontier),
            )
            found = {}
            for row in rows:
                owner = frontier[row["merged_into"]]
                if row["stream"] not in groups[owner]:
                    groups[owner].append(row["stream"])
                    found[row["stream"]] = owner
            frontier = found
        return groups

    def group(self, tx: Tx, stream: str) -> list[str]:
        return self.groups(tx, [stream])[stream]


def marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def dumps(doc: Any) -> str:
    return orjson.dumps(doc).decode()
