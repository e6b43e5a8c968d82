"""A bounded cache of customer aggregates for the batch path, checked out while a batch runs.

A batch takes the customers it needs out of the cache and puts them back only after its
transaction committed, so two batches of one process never change one aggregate object, and
a batch that failed (a lost race, an error) leaves nothing half-decided behind. Whether a
cached aggregate is still current is not this cache's business: the loader asks the store
for the events after the cached version (another process may have appended) in the same
query that loads the customers it does not have.

The cache is bounded twice: by the number of customers and by their weight, the facts their
states hold (orders, requests, claims, consent, promises, material sent). A customer's state
grows with every order it places, so a bound by count alone lets memory grow for as long as
the same customers keep buying; the weight bound keeps it flat.

Entries are dropped once unused for `ttl` seconds: a cached aggregate holds the customer's
personal data opened, and the hub promises that another process keeps such data at most
60 s after it last read it (the same bound as its key cache, hub/shred.py).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from eventsourcing.domain import Aggregate

A = TypeVar("A", bound=Aggregate)


def _one(_aggregate: object) -> int:
    return 1


class AggregateCache(Generic[A]):
    """Up to `maxsize` aggregates by id weighing at most `max_weight` together (by `weigh`),
    least recently used dropped first."""

    def __init__(
        self,
        maxsize: int,
        ttl: float = 60.0,
        max_weight: int | None = None,
        weigh: Callable[[A], int] = _one,
    ):
        self.maxsize = maxsize
        self.ttl = ttl
        self.max_weight = max_weight
        self.weigh = weigh
        self.weight = 0
        self._entries: OrderedDict[str, tuple[float, A, int]] = OrderedDict()
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
                entry = self._pop(aggregate_id)
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
                self._pop(key)
                weight = self.weigh(aggregate)
                self._entries[key] = (now, aggregate, weight)
                self.weight += weight
            limit = self.max_weight
            while len(self._entries) > self.maxsize or (limit is not None and self.weight > limit):
                self._drop_oldest()
            self._expire(now)

    def discard(self, ids: Iterable[str]) -> None:
        """Forget these aggregates (erased, or changed by a path that bypasses the cache)."""
        with self._lock:
            for aggregate_id in ids:
                self._pop(aggregate_id)

    def _pop(self, aggregate_id: str) -> tuple[float, A, int] | None:
        entry = self._entries.pop(aggregate_id, None)
        if entry is not None:
            self.weight -= entry[2]
        return entry

    def _drop_oldest(self) -> None:
        self.weight -= self._entries.popitem(last=False)[1][2]

    def _expire(self, now: float) -> None:
        # Least recently used first: stop at the first entry still fresh.
        while self._entries:
            used = next(iter(self._entries.values()))[0]
            if now - used < self.ttl:
                return
            self._drop_oldest()
