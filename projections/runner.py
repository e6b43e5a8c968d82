"""The projection runner: reads the notification log a few pages at a time and applies them to
its views (all six, or a subset) in one transaction together with each view's tracking record
(exactly once).

`catch_up` works through the log; `start` follows it in a thread, woken by the hub's commits in
this process and polling for other processes' (SQLite cannot be subscribed to). Several
runners may share a store, with the same views or different ones: one advisory lock per view
on PostgreSQL (SQLite's single writer elsewhere) and the positions re-read inside each
transaction keep every event applied once to each view.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from hub.app import Hub
from hub.collect import few_collections
from hub.errors import HubError
from hub.settings import Settings
from hub.store import ScanRow
from projections.analytics import Analytics
from projections.base import Event, View, decode, decode_rows, norm_time
from projections.claims import Claims
from projections.conflicts import Conflicts
from projections.erasure import erased_in, scrub
from projections.open_items import OpenItems
from projections.profile import Profile
from projections.sla import SlaPolicy
from projections.store import (
    PROJECTION_LOCKS,
    PostgresViewRecorder,
    Tx,
    scratch,
    view_recorder,
)
from projections.timeline import Timeline

log = logging.getLogger(__name__)
T = TypeVar("T")


class ProjectionsBehind(HubError):
    """The projections did not reach the asked position in time; the caller may retry."""

    status = 503
    kind = "projections-behind"
    title = "Projections have not caught up yet"

    def __init__(self, wanted: int, reached: int):
        super().__init__(f"asked for position {wanted}; the projections are at {reached}")
        self.wanted, self.reached = wanted, reached

    def problem(self) -> dict[str, Any]:
        return {**super().problem(), "min_position": self.wanted, "position": self.reached}


COLLECT_EVERY = 100_000  # notifications between full collections during a long catch-up
# Every view, in its stable order: the order a runner applies them and the number of its lock.
VIEW_NAMES = ("timeline", "profile", "open_items", "claims", "conflicts", "analytics")


def build_projections(
    hub: Hub, settings: Settings, views: Sequence[str] | None = None
) -> Projections:
    """The projections of a hub, configured by the settings (not started)."""
    return Projections(
        hub,
        policy=SlaPolicy(settings.sla),
        page_size=settings.projection_page_size,
        poll_interval=settings.projection_poll_s,
        cache_entries=settings.projection_cache_entries,
        views=views,
    )


def build_views(
    policy: SlaPolicy | None = None,
    names: Sequence[str] | None = None,
    cache_entries: int = 50_000,
) -> list[View]:
    """The named views (every one by default), in `VIEW_NAMES` order."""
    unknown = sorted(set(names or ()) - set(VIEW_NAMES))
    if unknown:
        raise ValueError(f"no projection {unknown[0]!r}; known: {', '.join(VIEW_NAMES)}")
    every: list[View] = [
        Timeline(),
        Profile(cache_entries=cache_entries),
        OpenItems(policy),
        Claims(),
        Conflicts(),
        Analytics(),
    ]
    return [view for view in every if names is None or view.name in names]


class Projections:
    """The read models of one hub: catch up, follow, rebuild, status, wait and read."""

    def __init__(
        self,
        hub: Hub,
        *,
        policy: SlaPolicy | None = None,
        page_size: int = 1000,
        poll_interval: float = 0.2,
        catch_up_pages: int = 10,
        cache_entries: int = 50_000,
        views: Sequence[str] | None = None,
    ):
        """`views`: the names of the views this runner applies (every one by default); the
        others may be applied by other runners, in this process or others."""
        self.hub = hub
        self.views = build_views(policy, views, cache_entries)
        self.by_name = {view.name: view for view in self.views}
        self.tables = [table for view in self.views for table in view.tables]
        prefix = getattr(hub.recorder, "events_table_name", "hub_events").removesuffix("_events")
        self.recorder = view_recorder(hub.recorder.datastore, self.tables, prefix)  # type: ignore[attr-defined]
        missing = self.recorder.missing_tables()
        self.recorder.create_table()
        self.postgres = isinstance(self.recorder, PostgresViewRecorder)
        # A view that gained a table since its rows were made starts again from zero.
        self._reset([v for v in self.views if any(t.name in missing for t in v.tables)])
        self.page_size = page_size
        self.catch_up_pages = catch_up_pages
        self.poll_interval = poll_interval
        self._committed: dict[str, int] = {}  # each view's position as this runner left it
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        hub.on_commit(lambda _position: self._wake.set())

    @property
    def names(self) -> list[str]:
        return list(self.by_name)

    # -- positions ------------------------------------------------------------------------

    def _positions(self, tx: Tx, names: Sequence[str] | None = None) -> dict[str, int]:
        names = list(names or self.names)
        rows = tx.execute(
            f"SELECT application_name, notification_id FROM {self.recorder.tracking_table} "
            f"WHERE application_name IN ({','.join('?' * len(names))})",
            names,
        )
        found = {row["application_name"]: row["notification_id"] for row in rows}
        return {name: int(found.get(name) or 0) for name in names}

    def positions(self, names: Iterable[str] | None = None) -> dict[str, int]:
        """Each view's tracked position: the last notification it has applied. The views
        are this runner's by default; any view's position can be asked (it is read from the
        store, so views applied by other processes count as well)."""
        with self.recorder.tx(commit=False) as tx:
            return self._positions(tx, list(names) if names is not None else None)

    def position(self, names: Iterable[str]) -> int:
        return min(self.positions(names).values())

    def _lock(self, tx: Tx, views: Sequence[View]) -> None:
        """Take the views' advisory locks, in `VIEW_NAMES` order (so runners never deadlock);
        held until the transaction ends. SQLite has one writer at a time anyway."""
        if self.postgres:
            for number in sorted(VIEW_NAMES.index(view.name) for view in views):
                tx.execute("SELECT pg_advisory_xact_lock(?, ?)", [PROJECTION_LOCKS, number])

    def status(self) -> list[dict[str, Any]]:
        """Position and lag (events behind the log's head) of each view of this runner."""
        head = self.hub.recorder.max_notification_id() or 0
        return [
            {"name": name, "position": at, "head": head, "lag": max(0, head - at)}
            for name, at in self.positions().items()
        ]

    # -- applying -------------------------------------------------------------------------

    def step(self, pages: int = 1) -> int:
        """Apply up to `pages` pages of the log to every view that has not seen them, in one
        transaction; the number of notifications read."""
        with few_collections():
            start = min(self.positions().values())
            page, events = self._read(start, pages)
            if page:
                self._apply(start, page, events)
            return len(page)

    def _read(self, start: int, pages: int) -> tuple[list[ScanRow], list[Event]]:
        """The notifications after `start`, and their hub events decoded."""
        with few_collections():
            page = self.hub.store.select_rows(start + 1, self.page_size * pages)
            return page, decode_rows(page, self.hub.shredder) if page else []

    def _apply(self, start: int, page: Sequence[ScanRow], events: list[Event]) -> bool:
        """Apply a page read after `start` in one transaction with the views' tracking; False
        when a view was behind `start` (just rebuilt), so the page was not all it needed."""
        last = page[-1][0]
        applied: list[View] = []
        complete = True
        try:
            with few_collections(), self.recorder.tx(commit=True) as tx:
                tx.remember = True
                self._lock(tx, self.views)
                current = self._positions(tx)
                for view in self.views:
                    at = current[view.name]
                    if at < start:
                        complete = False  # rebuilt meanwhile: it needs earlier pages first
                        continue
                    if at >= last:
                        continue  # another runner got here first
                    if self._committed.get(view.name) != at:
                        view.forget()  # someone else moved it: what it remembers may be stale
                    view.apply(tx, [e for e in events if e.position > at])
                    self.recorder.record_tracking(tx, view.name, last)
                    applied.append(view)
                erased = erased_in(events)
                if erased and applied:
                    scrub(self.hub, tx, applied, erased, last)
                    for view in applied:
                        view.forget()  # what they remember of the erased group is replaced
        except BaseException:
            self._forget()
            raise
        for view in applied:
            self._committed[view.name] = last
        with self._progress:
            self._progress.notify_all()
        return complete

    def _forget(self) -> None:
        self._committed.clear()
        for view in self.views:
            view.forget()

    def catch_up(self, until: threading.Event | None = None) -> int:
        """Apply every page up to the log's head (or until `until` is set); the number of
        notifications read.

        Several pages go into each transaction (fewer commits, and a customer's documents
        are written once for all of its events in them), and the next pages are read and
        decoded in a second thread while the store writes the current ones."""
        with few_collections():
            start = min(self.positions().values())
            page, events = self._read(start, self.catch_up_pages)
            if not page:
                return 0  # the usual case when following: no reading thread for nothing
            total = 0
            with ThreadPoolExecutor(1, thread_name_prefix="projections-read") as reader:
                while page and (until is None or not until.is_set()):
                    ahead = reader.submit(self._read, page[-1][0], self.catch_up_pages)
                    if total // COLLECT_EVERY != (total + len(page)) // COLLECT_EVERY:
                        # A log that never drains (steady writes) must not keep the process's
                        # cyclic garbage (HTTP handlers, tracebacks) from ever being collected.
                        gc.collect()
                    total += len(page)
                    if self._apply(start, page, events):
                        start = page[-1][0]
                        page, events = ahead.result()
                    else:  # start again from the positions as they are now
                        ahead.result()
                        start = min(self.positions().values())
                        page, events = self._read(start, self.catch_up_pages)
            return total

    def rebuild(self, names: Sequence[str] | None = None) -> int:
        """Empty the named views (all by default) and their tracking, then catch up."""
        self.clear(names)
        return self.catch_up()

    def clear(self, names: Sequence[str] | None = None) -> None:
        """Empty the named views (all of this runner's by default) and their tracking."""
        self._reset([self.by_name[name] for name in (names or self.names)])

    def _reset(self, views: Sequence[View]) -> None:
        """Empty the views' tables and their tracking (one transaction)."""
        if not views:
            return
        with self.recorder.tx(commit=True) as tx:
            self._lock(tx, views)
            for view in views:
                view.clear(tx)
                view.forget()
                tx.execute(
                    f"DELETE FROM {self.recorder.tracking_table} WHERE application_name = ?",
                    [view.name],
                )

    # -- following ------------------------------------------------------------------------

    def start(self) -> None:
        """Follow the log in a background thread until `stop`."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._follow, name="projections", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    @property
    def following(self) -> bool:
        return self._thread is not None

    def _follow(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.catch_up(until=self._stop)
            except Exception:  # a store hiccup must not end the follower: log, wait, retry
                log.exception("projections: applying a page failed; retrying")
                self._stop.wait(1.0)
                continue
            self._wake.wait(self.poll_interval)

    def wait_for(self, names: Iterable[str], position: int | None, timeout: float) -> int:
        """Block until the named views reached `position`; their (lowest) position.

        Raises ProjectionsBehind after `timeout` seconds."""
        names = list(names)
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            reached = self.position(names)
            if position is None or reached >= position:
                return reached
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProjectionsBehind(position, reached)
            if self.following:
                with self._progress:
                    self._progress.wait(min(left, 0.1))
            else:
                time.sleep(min(left, pause))
                pause = min(pause * 2, 0.1)

    # -- reading --------------------------------------------------------------------------

    def read(self, query: Callable[[Tx], T]) -> T:
        with self.recorder.tx(commit=False) as tx:
            return query(tx)

    def as_of(self, customer_id: str, moment: datetime, query: Callable[[Tx], T]) -> T:
        """Run a query on views replayed from the customer's streams as recorded by `moment`."""
        at = norm_time(moment) or ""
        events: dict[int, Event] = {}
        todo, seen = [customer_id], set()
        while todo:
            stream = todo.pop()
            if stream in seen:
                continue
            seen.add(stream)
            try:
                notifications = self.hub.store.stream(UUID(stream))
            except ValueError:
                notifications = []
            for event in decode(notifications, self.hub.shredder):
                if event.recorded_at <= at:
                    events[event.position] = event
                    if event.kind == "absorbed":
                        todo.append(event.doc["other_id"])
                    elif event.kind == "merged_into":
                        # the survivor's touchpoints change this stream's rows (an answer
                        # closes a merged-away customer's item): replay its group too
                        todo.append(event.doc["survivor_id"])
        ordered = [events[p] for p in sorted(events)]
        with scratch(self.tables) as tx:
            for view in self.views:
                view.apply(tx, ordered)
            return query(tx)
