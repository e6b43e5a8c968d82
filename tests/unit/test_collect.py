"""The collector pause: off while held, back on after, and never off for ever."""

from __future__ import annotations

import gc
import threading
import time

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


def test_the_oldest_generation_is_collected_on_a_clock_while_scheduled() -> None:
    before = gc.get_threshold()
    with collect.scheduled_full_collections(every_s=0.05):
        with collect.scheduled_full_collections(every_s=0.05):  # nested: one schedule
            assert gc.get_threshold()[:2] == before[:2]
            assert gc.get_threshold()[2] > 10**9  # never by itself
            assert gc.get_freeze_count() > 0  # what existed at the start is left out
            runs = gc.get_stats()[2]["collections"]
            deadline = time.monotonic() + 5
            while gc.get_stats()[2]["collections"] < runs + 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert gc.get_stats()[2]["collections"] >= runs + 2  # the clock's collections
        assert gc.get_threshold()[2] > 10**9  # the outer holder still holds it
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    runs = gc.get_stats()[2]["collections"]
    time.sleep(0.2)
    assert gc.get_stats()[2]["collections"] <= runs + 1  # the clock stopped (one may be automatic)
