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
V = TypeVar("V")


def _one(_value: object) -> int:
    return 1


class Bounded(Generic[V]):
    """Values by key, least recently used first: at most `size` of them, weighing at most
    `max_weight` together (by `weigh`); putting one drops the oldest beyond either bound."""

    def __init__(self, size: int, max_weight: int | None = None, weigh: Callable[[V], int] = _one):
        self.size = size
        self.max_weight = max_weight
        self.weigh = weigh
        self.weight = 0
        self._entries: OrderedDict[str, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        """The value, now the most recently used; None when absent."""
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    def put(self, key: str, value: V) -> None:
        self.pop(key)
        weight = self.weigh(value)
        self._entries[key] = (value, weight)
        self.weight += weight
        limit = self.max_weight
        while len(self._entries) > self.size or (limit is not None and self.weight > limit):
            self.pop_oldest()

    def pop(self, key: str) -> V | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.weight -= entry[1]
        return entry[0]

    def oldest(self) -> V | None:
        return next(iter(self._entries.values()))[0] if self._entries else None

    def pop_oldest(self) -> None:
        self.weight -= self._entries.popitem(last=False)[1][1]

    def clear(self) -> None:
        self._entries.clear()
        self.weight = 0


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
        self._entries: Bounded[tuple[float, A]] = Bounded(
            maxsize, max_weight, lambda entry: weigh(entry[1])
        )
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def weight(self) -> int:
        return self._entries.weight

    @property
    def max_weight(self) -> int | None:
        return self._entries.max_weight

    def take(self, ids: Iterable[str]) -> dict[str, A]:
        """Remove and return the cached aggregates among `ids` (unknown ids are left out)."""
        now = time.monotonic()
        found: dict[str, A] = {}
        with self._lock:
            self._expire(now)
            for aggregate_id in ids:
                entry = self._entries.pop(aggregate_id)
                if entry is None:
                    self.misses += 1
                else:
                    self.hits += 1
                    found[aggregate_id] = entry[1]
        return found

    def put(self, aggregates: Iterable[tuple[str, A]]) -> None:
        """Keep these aggregates (committed, no pending events), given with their ids as
        text, for the next batch."""
        if self.maxsize <= 0:
            return
        now = time.monotonic()
        with self._lock:
            for aggregate_id, aggregate in aggregates:
                self._entries.put(aggregate_id, (now, aggregate))
            self._expire(now)

    def discard(self, ids: Iterable[str]) -> None:
        """Forget these aggregates (erased, or changed by a path that bypasses the cache)."""
        with self._lock:
            for aggregate_id in ids:
                self._entries.pop(aggregate_id)

    def _expire(self, now: float) -> None:
        # Least recently used first: stop at the first entry still fresh.
        while (entry := self._entries.oldest()) is not None and now - entry[0] >= self.ttl:
            self._entries.pop_oldest()
