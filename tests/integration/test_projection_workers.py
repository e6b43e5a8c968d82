"""Views split over runners: side by side (disjoint or overlapping views) they give exactly the
rows one runner gives, each event once per view; `hub project --workers 2` catches a log up
and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from hub.app import Hub
from projections.runner import VIEW_NAMES, Projections
from tests.factories import touchpoint
from tests.integration.test_projection_runs import digest, fill, merged_pair
from tests.stores import cli_env


def run_side_by_side(make_hub: Callable[..., Hub], subsets: Sequence[Sequence[str]]) -> Hub:
    """Runners of the subsets, each on its own hub (as in its own process), following the log
    while 600 touchpoints and a merge are recorded; the writing hub once all caught up."""
    writer = make_hub()
    runners = [
        Projections(make_hub(), views=subset, page_size=20, poll_interval=0.01)
        for subset in subsets
    ]
    for runner in runners:
        runner.start()
    try:
        fill(writer, 600, chunk=60)
        _, _, position = merged_pair(writer, "split")
        for runner in runners:
            runner.wait_for(runner.names, position, timeout=60)
    finally:
        for runner in runners:
            runner.stop()
    return writer


def assert_rows_of_one_runner(hub: Hub) -> None:
    """The views as the split runners left them equal one runner's rebuild, and each
    touchpoint was applied once (counted by the views that count)."""
    views = Projections(hub)
    split = digest(views)
    counted = views.read(lambda tx: tx.execute("SELECT SUM(n) AS n FROM {s}view_analytics_counts"))
    entries = views.read(lambda tx: tx.execute("SELECT COUNT(*) AS n FROM {s}view_timeline"))
    views.rebuild()
    assert digest(views) == split
    assert int(counted[0]["n"]) == int(entries[0]["n"]) == 602


def test_runners_of_disjoint_views_side_by_side_give_the_rows_of_one_runner(
    make_hub: Callable[..., Hub],
) -> None:
    hub = run_side_by_side(
        make_hub, [("timeline", "claims", "conflicts"), ("profile", "open_items", "analytics")]
    )
    assert_rows_of_one_runner(hub)


def test_runners_of_overlapping_views_side_by_side_apply_each_event_once(
    make_hub: Callable[..., Hub],
) -> None:
    hub = run_side_by_side(
        make_hub,
        [
            ("timeline", "profile", "open_items", "claims"),
            ("claims", "conflicts", "analytics", "timeline"),
            VIEW_NAMES,
        ],
    )
    assert_rows_of_one_runner(hub)


def test_a_runner_of_some_views_leaves_the_others_alone(hub: Hub) -> None:
    fill(hub, 100)
    Projections(hub, views=["timeline", "analytics"]).catch_up()
    positions = Projections(hub).positions()
    head = hub.recorder.max_notification_id()
    applied = ("timeline", "analytics")
    assert positions == {name: head if name in applied else 0 for name in positions}


def test_unknown_view_is_refused(hub: Hub) -> None:
    with pytest.raises(ValueError, match="no projection 'timelines'"):
        Projections(hub, views=["timelines"])


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@contextmanager
def two_workers(hub: Hub, store_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """`hub project --workers 2` on the test's store, once it caught the log up."""
    env = {**os.environ, **cli_env(store_env), "HUB_PROJECTION_POLL_S": "0.05"}
    command = [sys.executable, "-m", "api.cli", "project", "--workers", "2"]
    supervisor = subprocess.Popen(command, env=env)
    try:
        views = Projections(hub)
        views.wait_for(views.names, hub.recorder.max_notification_id(), timeout=60)
        yield supervisor
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def test_hub_project_with_two_workers_catches_up_follows_and_stops_on_sigterm(
    hub: Hub, store_env: dict[str, str]
) -> None:
    fill(hub, 400)
    views = Projections(hub)
    with two_workers(hub, store_env) as supervisor:
        workers = children_of(supervisor.pid)
        assert len(workers) == 2
        position = hub.record(touchpoint(customer={"email": "late@example.com"})).position
        views.wait_for(views.names, position, timeout=30)  # following, not only caught up
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(40) == 0
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    caught = digest(views)
    views.rebuild()
    assert digest(views) == caught


def test_hub_project_restarts_a_worker_that_died(hub: Hub, store_env: dict[str, str]) -> None:
    fill(hub, 100)
    views = Projections(hub)
    with two_workers(hub, store_env) as supervisor:
        killed = children_of(supervisor.pid)[0]
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            workers = children_of(supervisor.pid)
            if len(workers) == 2 and killed not in workers:
                break
            time.sleep(0.05)
        assert len(workers) == 2 and killed not in workers
        position = hub.record(touchpoint(customer={"email": "late@example.com"})).position
        views.wait_for(views.names, position, timeout=30)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(40) == 0
