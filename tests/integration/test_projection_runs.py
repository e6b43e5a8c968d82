"""Running projections: exactly once across a SIGKILL, rebuild equals live, one view alone."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

from hub.app import Hub
from hub.envelope import Envelope
from projections.runner import Projections
from tests.factories import money, touchpoint
from tests.stores import cli_env


def digest(views: Projections) -> dict[str, str]:
    """A digest of every view table's rows, in key order."""
    found = {}
    for table in views.tables:
        rows = views.read(
            lambda tx, t=table: tx.execute(
                f"SELECT {', '.join(t.column_names)} FROM {{s}}{t.name} ORDER BY {', '.join(t.key)}"
            )
        )
        text = "\n".join(repr([row[name] for name in table.column_names]) for row in rows)
        found[table.name] = hashlib.sha256(text.encode()).hexdigest()
    return found


def workload(n: int) -> list[Envelope]:
    """A mix of touchpoint types over a few dozen customers."""
    made = []
    for i in range(n):
        customer = {"email": f"c{i % 37}@example.com"}
        at = f"2026-11-0{1 + i % 9}T{i % 24:02d}:00:00Z"
        kind = i % 6
        if kind == 0:
            extra: dict[str, Any] = {"type": "email.received", "data": {"subject": f"q{i}"}}
        elif kind == 1:
            extra = {"type": "order.placed", "data": {"order_id": f"O-{i}", "total": money("9.50")}}
        elif kind == 2:
            extra = {"type": "service.opened", "data": {"request_id": f"R-{i}", "kind": "repair"}}
        elif kind == 3:
            extra = {"type": "call.outbound", "data": {"summary": "hello"}}
        elif kind == 4:
            extra = {"type": "promise.made", "data": {"promise_id": f"P-{i}", "what": "x"}}
        else:
            extra = {"type": "note.added", "data": {"text": f"note {i}"}}
        made.append(touchpoint(customer=customer, occurred_at=at, **extra))
    return made


def fill(hub: Hub, n: int, chunk: int = 200) -> None:
    envelopes = workload(n)
    for start in range(0, n, chunk):
        hub.record_batch(envelopes[start : start + chunk])


def merged_pair(hub: Hub, name: str) -> tuple[str, str, int]:
    """Two new customers, `<name>-a@` and `<name>-b@example.com`, the second merged into the
    first: their ids and the merge's position."""
    a = hub.record(touchpoint(customer={"email": f"{name}-a@example.com"}))
    b = hub.record(touchpoint(customer={"email": f"{name}-b@example.com"}))
    return a.customer_id, b.customer_id, hub.merge(a.customer_id, b.customer_id)


def test_projection_process_killed_mid_catch_up_resumes_and_applies_each_event_once(
    hub: Hub, store_env: dict[str, str]
) -> None:
    fill(hub, 1500)
    views = Projections(hub)
    head = hub.recorder.max_notification_id()
    env = {**os.environ, **cli_env(store_env), "HUB_PROJECTION_PAGE_SIZE": "10"}
    worker = subprocess.Popen([sys.executable, "-m", "api.cli", "project"], env=env)
    try:
        deadline = time.monotonic() + 60
        while min(views.positions().values()) < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    reached = min(views.positions().values())
    assert 300 <= reached < head, "the worker was to die in the middle of catching up"

    views.catch_up()
    resumed = digest(views)
    views.rebuild()
    assert digest(views) == resumed
    counted = views.read(lambda tx: tx.execute("SELECT SUM(n) AS n FROM {s}view_analytics_counts"))
    assert int(counted[0]["n"]) == 1500


def test_rebuilt_projections_equal_the_live_ones_after_a_mixed_workload(hub: Hub) -> None:
    views = Projections(hub, page_size=50)
    views.start()
    try:
        fill(hub, 400, chunk=40)
        a, b, _ = merged_pair(hub, "merge")
        hub.record(
            touchpoint(
                customer={"email": "merge-b@example.com"},
                type="email.received",
                data={"subject": "after the merge"},
            )
        )
        position = hub.unmerge(a, b)
        views.wait_for(views.names, position, timeout=30)
    finally:
        views.stop()
    live = digest(views)
    views.rebuild()
    assert digest(views) == live


def test_rebuilding_one_projection_leaves_the_others_and_gives_the_same_rows(hub: Hub) -> None:
    fill(hub, 300)
    views = Projections(hub)
    views.catch_up()
    before = digest(views)
    positions = views.positions()
    views.rebuild(["timeline"])
    assert digest(views) == before
    assert views.positions() == positions
