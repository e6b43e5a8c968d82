"""A bounded cache of customer aggregates for the batch path, checked out while a batch runs.

A batch takes the customers it needs out of the cache and puts them back only after its
transaction committed, so two batches of one process never change one aggregate object, and
a batch that failed (a lost race, an error) leaves nothing half-decided behind. Whether a
cached aggregate is still current is not this cache's business: the loader asks the store
for the events after the cached version (another process may have appended) in the same
query that loads the customers it does not have.

Entries are dropped once unused for `ttl` seconds: a cached aggregate holds the customer's
personal data opened, and the hub promises that another process keeps such data at most
60 s after it last read it (the same bound as its key cache, hub/shred.py).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Generic, TypeVar

from eventsourcing.domain import Aggregate

A = TypeVar("A", bound=Aggregate)


class AggregateCache(Generic[A]):
    """Up to `maxsize` aggregates by id, least recently used dropped first."""

    def __init__(self, maxsize: int, ttl: float = 60.0):
        self.maxsize = maxsize
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, A]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, ids: Iterable[str]) -> dict[str, A]:
        """Remove and return the cached aggregates among `ids` (unknown ids are left out)."""
        now = time.monotonic()
        found: dict[str, A] = {}
        with self._lock:
            self._expire(now)
            for aggregate_id in ids:
                entry = self._entries.pop(aggregate_id, None)
                if entry is None:
                    self.misses += 1
                else:
                    self.hits += 1
                    found[aggregate_id] = entry[1]
        return found

    def put(self, aggregates: Iterable[A]) -> None:
        """Keep these aggregates (committed, no pending events) for the next batch."""
        if self.maxsize <= 0:
            return
        now = time.monotonic()
        with self._lock:
            for aggregate in aggregates:
                key = str(aggregate.id)
                self._entries[key] = (now, aggregate)
                self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
            self._expire(now)

    def discard(self, ids: Iterable[str]) -> None:
        """Forget these aggregates (erased, or changed by a path that bypasses the cache)."""
        with self._lock:
            for aggregate_id in ids:
                self._entries.pop(aggregate_id, None)

    def _expire(self, now: float) -> None:
        # Least recently used first: stop at the first entry still fresh.
        while self._entries:
            used, _ = next(iter(self._entries.values()))
            if now - used < self.ttl:
                return
            self._entries.popitem(last=False)
