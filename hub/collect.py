"""No cyclic garbage collection while a batch of short-lived objects is in hand.

A page of decoded events, or a batch of touchpoints being decided, is some tens of objects per
item that live until the commit and then die by reference counting; collections in between only
walk them again and again (a third of a catch-up's CPU, measured; about 50 µs per touchpoint of
a batch as the customer cache grows). Collection resumes when the last holder is done: the
flag is the process's, so threads count who holds it. Under steady load some thread may hold
it all the time, so while it stays off a full collection runs every `COLLECT_EVERY_S`
seconds anyway (when a holder enters, or when a loop that holds it calls `collect_if_due`):
the process's other cyclic garbage (HTTP handlers, tracebacks) must not live for ever.

A hub process keeps most of what it allocates: the customer cache, the views' caches. Each full
collection walks all of it (66–122 ms a collection in `hub serve` under `bench/http.py`, twelve
of them in 17 s, every request waiting), so `keep_survivors_frozen` moves what survives a full
collection into the permanent generation, which later collections skip; every
`THAW_EVERY_S` the frozen objects go back, so the next full collection frees whatever died in
a cycle meanwhile.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = [0, False]  # how many threads want collection off; whether it was on before
_off_since = [0.0]  # when collection was last turned off or run
COLLECT_EVERY_S = 10.0
THAW_EVERY_S = 60.0
_thawed = [0.0]  # when the frozen objects were last handed back to the collector


def _due(now: float) -> bool:
    """Under `_lock`, with the pause held: whether a full collection is due (and then it is
    counted as run)."""
    if _holders[1] and now - _off_since[0] > COLLECT_EVERY_S:
        _off_since[0] = now
        return True
    return False


def collect_if_due() -> None:
    """For a loop that holds the pause for as long as it runs: the full collection the pause
    owes the process, if it is due (nothing else may enter the pause while the loop idles)."""
    with _lock:
        due = _holders[0] > 0 and _due(time.monotonic())
    if due:
        gc.collect()


@contextmanager
def few_collections() -> Iterator[None]:
    overdue = False
    with _lock:
        now = time.monotonic()
        if _holders[0] == 0:
            _holders[1] = gc.isenabled()
            gc.disable()
            _off_since[0] = now
        else:
            overdue = _due(now)
        _holders[0] += 1
    if overdue:
        gc.collect()
    try:
        yield
    finally:
        with _lock:
            _holders[0] -= 1
            if _holders[0] == 0 and _holders[1]:
                gc.enable()


# The youngest generation is collected after this many allocations net of deallocations
# (Python's default: 700). A request or a batch allocates thousands of containers that die by
# reference counting, so at 700 `hub serve` under `bench/http.py` ran 758–875 collections in a
# 10 s run, 329–382 ms of collecting (counted with `gc.callbacks`); at 20,000, 15 and 71–105 ms:
# ~13 µs less of each request's ~300.
YOUNG_THRESHOLD = 20_000


def keep_survivors_frozen() -> None:
    """For a long-running process: later full collections walk only what is new, and young
    collections run less often (`YOUNG_THRESHOLD`)."""
    if _freeze_survivors not in gc.callbacks:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)
        _thawed[0] = time.monotonic()
        gc.freeze()  # what is loaded at start (the imported modules) lives as long as we do
        gc.callbacks.append(_freeze_survivors)


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    if phase != "stop" or info["generation"] != 2:
        return
    now = time.monotonic()
    if now - _thawed[0] >= THAW_EVERY_S:
        _thawed[0] = now
        gc.unfreeze()  # the next full collection walks everything once, cycles are freed
    else:
        gc.freeze()
