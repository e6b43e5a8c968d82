"""The collector pause: off while held, back on after, and never off for ever."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading

import pytest

from hub import collect
from hub.collect import few_collections


def test_collection_is_off_while_held_and_on_after() -> None:
    assert gc.isenabled()
    with few_collections():
        assert not gc.isenabled()
        with few_collections():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer holder still holds it
    assert gc.isenabled()


def test_a_pause_held_by_another_thread_still_collects_when_overdue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collect, "COLLECT_EVERY_S", 0.0)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with few_collections():
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    try:

        class Cycle:
            def __init__(self) -> None:
                self.me = self

        Cycle()  # garbage only the cyclic collector can free
        before = gc.get_stats()[2]["collections"]
        with few_collections():  # overdue: this entry runs a full collection
            pass
        assert gc.get_stats()[2]["collections"] == before + 1
        assert not gc.isenabled()  # the other thread still holds the pause
    finally:
        release.set()
        thread.join()
    assert gc.isenabled()


def test_a_loop_holding_the_pause_collects_when_due(monkeypatch: pytest.MonkeyPatch) -> None:
    class Cycle:
        def __init__(self) -> None:
            self.me = self

    monkeypatch.setattr(collect, "COLLECT_EVERY_S", 3600.0)
    with few_collections():
        before = gc.get_stats()[2]["collections"]
        collect.collect_if_due()  # not due yet: nothing runs
        assert gc.get_stats()[2]["collections"] == before
        monkeypatch.setattr(collect, "COLLECT_EVERY_S", 0.0)
        Cycle()
        collect.collect_if_due()
        assert gc.get_stats()[2]["collections"] == before + 1
        assert not gc.isenabled()
    assert gc.isenabled()
    before = gc.get_stats()[2]["collections"]
    collect.collect_if_due()  # nobody holds the pause: the collector runs as usual, not this
    assert gc.get_stats()[2]["collections"] == before


FREEZING = """
import gc, json, weakref
from hub import collect

class Cycle:
    pass

def cycle():
    node = Cycle()
    node.me = node
    return node

collect.keep_survivors_frozen()
young_threshold = gc.get_threshold()[0]
kept = cycle()
gc.collect()
frozen_after_full = gc.get_freeze_count()
in_young = any(o is kept for o in gc.get_objects())
watch = weakref.ref(kept)
del kept  # garbage in a cycle, but frozen: no collection sees it
gc.collect()
alive_while_frozen = watch() is not None
collect.THAW_EVERY_S = 0.0
gc.collect()  # due: hands the frozen objects back
gc.collect()  # walks everything once
freed = watch() is None
print(json.dumps([frozen_after_full, in_young, alive_while_frozen, freed, young_threshold]))
"""


def test_survivors_of_a_full_collection_are_frozen_until_the_thaw_frees_dead_cycles() -> None:
    # In a process of its own: freezing is the whole interpreter's.
    out = subprocess.run(
        [sys.executable, "-c", FREEZING], capture_output=True, text=True, check=True
    ).stdout
    frozen, in_young, alive_while_frozen, freed_after_thaw, young_threshold = json.loads(out)
    assert young_threshold == collect.YOUNG_THRESHOLD  # young collections less often
    assert frozen > 0 and not in_young  # survivors left the collected generations
    assert alive_while_frozen  # the price: a dead cycle waits for the thaw
    assert freed_after_thaw
