"""No cyclic garbage collection while a batch of short-lived objects is in hand.

A page of decoded events, or a batch of touchpoints being decided, is some tens of objects per
item that live until the commit and then die by reference counting; collections in between only
walk them again and again (a third of a catch-up's CPU, measured; about 50 µs per touchpoint of
a batch as the customer cache grows). Collection resumes when the last holder is done: the
flag is the process's, so threads count who holds it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = [0, False]  # how many threads want collection off; whether it was on before


@contextmanager
def few_collections() -> Iterator[None]:
    with _lock:
        if _holders[0] == 0:
            _holders[1] = gc.isenabled()
            gc.disable()
        _holders[0] += 1
    try:
        yield
    finally:
        with _lock:
            _holders[0] -= 1
            if _holders[0] == 0 and _holders[1]:
                gc.enable()
