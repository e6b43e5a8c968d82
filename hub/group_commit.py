"""Group commit: single touchpoints arriving together are decided as one batch and committed
in one transaction; each caller gets its own outcome once that transaction has committed.

One writer thread takes the first waiting touchpoint, gathers whatever else arrives within
`max_wait` (up to `max_batch`), and hands them, in arrival order, to `Hub.record_batch`:
the same decisions, rules and idempotency as one by one, with one commit instead of many.
At low load a touchpoint waits at most `max_wait`; under load batches grow by themselves
while the previous one commits.

Callers on an asyncio loop (`submit_async`, the HTTP API) get a future of their own loop, and
the writer settles a whole batch's futures with one call into each loop: one wake-up of the
loop per batch instead of one per touchpoint, and no thread-safe future chained to each.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from hub.app import Accepted, Hub
from hub.envelope import Envelope, Proposal
from hub.errors import StoreUnavailable


@dataclass
class _Waiting:
    item: Envelope | Proposal
    mode: str
    future: Future[Accepted] | asyncio.Future[Accepted]
    loop: asyncio.AbstractEventLoop | None = None  # the loop that owns `future`, if any


_STOP = object()


class GroupCommit:
    """Gathers concurrent `record` calls into shared transactions."""

    def __init__(self, hub: Hub, max_wait: float = 0.002, max_batch: int = 500):
        self.hub = hub
        self.max_wait = max_wait
        self.max_batch = max_batch
        self.batches = 0  # committed decision batches, for metrics and tests
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, item: Envelope | Proposal, mode: str = "live") -> Future[Accepted]:
        """Queue one touchpoint; the future holds its Accepted, or raises its HubError."""
        future: Future[Accepted] = Future()
        if self._closed:
            future.set_exception(StoreUnavailable("the hub is shutting down"))
        else:
            self._queue.put(_Waiting(item, mode, future))
        return future

    def submit_async(
        self, item: Envelope | Proposal, mode: str = "live"
    ) -> asyncio.Future[Accepted]:
        """As `submit`, for a caller on the running loop: the future is that loop's own.
        Cancelling it (a request timing out) leaves the touchpoint queued: it still commits,
        and a retry of it is then a duplicate."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Accepted] = loop.create_future()
        if self._closed:
            future.set_exception(StoreUnavailable("the hub is shutting down"))
        else:
            self._queue.put(_Waiting(item, mode, future, loop))
        return future

    def record(self, item: Envelope | Proposal, mode: str = "live") -> Accepted:
        """Record one touchpoint through the group; blocks until its batch has committed."""
        return self.submit(item, mode).result()

    def close(self) -> None:
        """Finish every touchpoint already queued, then stop the writer."""
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            waiting = [first]
            deadline = time.monotonic() + self.max_wait
            while len(waiting) < self.max_batch:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                waiting.append(nxt)
            for mode in ("live", "record"):
                group = [w for w in waiting if w.mode == mode]
                if group:
                    self._commit(group, mode)

    def _commit(self, group: list[_Waiting], mode: str) -> None:
        outcomes: list[Accepted | BaseException]
        try:
            outcomes = list(self.hub.record_batch([w.item for w in group], mode))
        except BaseException as error:  # noqa: BLE001 - every caller must hear of it
            outcomes = [error] * len(group)
        else:
            self.batches += 1
        by_loop: dict[asyncio.AbstractEventLoop | None, list[tuple[Any, Any]]] = {}
        for waiting, outcome in zip(group, outcomes, strict=True):
            by_loop.setdefault(waiting.loop, []).append((waiting.future, outcome))
        for loop, settled in by_loop.items():
            if loop is None:
                _settle(settled)  # thread-safe futures (`submit`): settled from this thread
                continue
            # A loop that has closed has nobody waiting on it any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[Any, Accepted | BaseException]]) -> None:
    """Hand each caller its outcome (one that gave up is skipped): on the callers' loop for
    its futures, in the writer for `submit`'s."""
    for future, outcome in settled:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
