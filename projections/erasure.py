"""Erasure reaches the live views: when a page brings `Erased`, the erased customers' rows are
derived again from the log (their personal fields now unreadable) and replace the rows that
still hold what was projected while the key existed.

The views stay as they are: the customers' group (every stream linked to them by a merge) is
replayed into a private in-memory copy of a view's tables by the view's own code, exactly as
`as_of` does, and the group's rows are swapped in. A table's rows belong to a customer by its
`stream` column, or by its `customer` column (rows made by the event at `position`, such as
rejected attempts, which live outside the customer's stream). Tables with neither (counts)
hold nothing personal and are left alone, so analytics keep their shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from hub.app import Hub
from projections.base import Event, View, decode, marks
from projections.store import Table, Tx, scratch


def erased_in(events: Sequence[Event]) -> list[str]:
    return sorted({event.stream for event in events if event.kind == "erased"})


def scrub(hub: Hub, tx: Tx, views: Sequence[View], erased: list[str], last: int) -> None:
    """Replace the rows of the erased customers (and their merge groups) in `views`."""
    hub.shredder.forget(erased)  # a key cached before the erasure must not open them again
    group, events = _group_events(hub, erased, last)
    for view in views:
        owned = [t for t in view.tables if _owner_column(t) is not None]
        if not owned:
            continue
        mine = {e.position for e in events}
        extra = [p for p in _positions_of(tx, owned, group) if p not in mine]
        chosen = sorted([*events, *_events_at(hub, extra)], key=lambda e: e.position)
        with scratch(view.tables) as copy:
            view.apply(copy, chosen)
            for table in owned:
                column = _owner_column(table)
                select = (
                    f"SELECT {', '.join(table.column_names)} FROM {{s}}{table.name} "
                    f"WHERE {column} IN ({{in}})"
                )
                rows = [tuple(row) for row in copy.chunked(select, group)]
                tx.execute(
                    f"DELETE FROM {{s}}{table.name} WHERE {column} IN ({marks(group)})", group
                )
                tx.insert(table, rows)


def _owner_column(table: Table) -> str | None:
    names = table.column_names
    if "stream" in names:
        return "stream"
    if "customer" in names and "position" in names:
        return "customer"
    return None


def _group_events(hub: Hub, erased: list[str], last: int) -> tuple[list[str], list[Event]]:
    """Every stream linked to the erased ones by merges, and their events up to `last`."""
    events: dict[int, Event] = {}
    todo, seen = list(erased), set()
    while todo:
        stream = todo.pop()
        if stream in seen:
            continue
        seen.add(stream)
        for event in decode(hub.store.stream(UUID(stream)), hub.shredder):
            if event.position > last:
                continue
            events[event.position] = event
            if event.kind == "absorbed":
                todo.append(event.doc["other_id"])
            elif event.kind == "merged_into":
                todo.append(event.doc["survivor_id"])
    return sorted(seen), [events[p] for p in sorted(events)]


def _positions_of(tx: Tx, tables: Sequence[Table], group: list[str]) -> list[int]:
    """Positions of the events that made rows owned through a `customer` column."""
    found: set[int] = set()
    for table in tables:
        if _owner_column(table) != "customer":
            continue
        rows = tx.chunked(
            f"SELECT position FROM {{s}}{table.name} WHERE customer IN ({{in}})", group
        )
        found.update(int(row["position"]) for row in rows)
    return sorted(found)


def _events_at(hub: Hub, positions: list[int]) -> list[Event]:
    events: list[Event] = []
    for position in positions:
        page = hub.recorder.select_notifications(position, 1)
        events += [e for e in decode(page, hub.shredder) if e.position == position]
    return events
