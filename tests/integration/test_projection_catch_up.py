"""What the fast catch-up keeps: views remembered between pages stay right when another runner
or a rebuild moves them, a failed page leaves nothing behind, and a view that gained a table
since its rows were made is rebuilt on start."""

from __future__ import annotations

from typing import Any

import pytest

from hub.app import Hub
from projections import reads
from projections.runner import Projections
from tests.factories import touchpoint
from tests.integration.test_projection_runs import digest, fill

LI = {"email": "li.wei@example.com"}


def profile(views: Projections, customer: str) -> dict[str, Any]:
    return views.read(lambda tx: reads.read_profile(tx, customer))


def test_two_runners_taking_turns_apply_every_event_once(hub: Hub) -> None:
    first, second = Projections(hub, page_size=20), Projections(hub, page_size=20)
    fill(hub, 150)
    first.catch_up()
    fill(hub, 150)  # the same customers again: `first` remembers their profiles
    second.catch_up()
    fill(hub, 150)
    first.catch_up()  # must not build on what it remembered from before `second` ran
    live = digest(first)
    first.rebuild()
    assert digest(first) == live
    assert sum(profile(first, c)["touchpoints"] for c in customers(first)) == 450


def customers(views: Projections) -> list[str]:
    rows = views.read(lambda tx: tx.execute("SELECT stream FROM {s}view_profile"))
    return [row["stream"] for row in rows]


def test_a_page_that_fails_leaves_neither_rows_nor_remembered_state(hub: Hub) -> None:
    views = Projections(hub)
    accepted = hub.record(touchpoint(customer=LI, type="note.added", data={"text": "one"}))
    views.catch_up()
    hub.record(touchpoint(customer=LI, type="note.added", data={"text": "two"}))
    last = views.views[-1]  # applied after the profile has changed its remembered document
    original = last.apply

    def broken(tx: Any, events: Any) -> None:
        raise RuntimeError("the store went away")

    last.apply = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        views.catch_up()
    last.apply = original  # type: ignore[method-assign]
    assert profile(views, accepted.customer_id)["touchpoints"] == 1  # rolled back
    views.catch_up()
    assert profile(views, accepted.customer_id)["touchpoints"] == 2


def test_a_view_that_gained_a_table_is_rebuilt_when_the_projections_start(hub: Hub) -> None:
    a = hub.record(touchpoint(customer={"email": "a@example.com"}))
    b = hub.record(touchpoint(customer={"email": "b@example.com"}))
    hub.merge(a.customer_id, b.customer_id)
    views = Projections(hub)
    views.catch_up()
    with views.recorder.tx(commit=True) as tx:  # as the store was before the table existed
        tx.execute("DROP TABLE {s}view_profile_links")
    restarted = Projections(hub)
    assert restarted.positions()["profile"] == 0
    assert restarted.positions()["timeline"] > 0
    restarted.catch_up()
    streams, _ = restarted.read(lambda tx: reads.streams_of(tx, a.customer_id))
    assert set(streams) == {a.customer_id, b.customer_id}


def test_catch_up_starts_again_when_a_view_is_rebuilt_under_it(hub: Hub) -> None:
    fill(hub, 300)
    views, other = Projections(hub, page_size=50), Projections(hub, page_size=50)
    views.catch_up()
    fill(hub, 300)
    read = views._read
    emptied = []

    def read_after_another_runner_emptied_claims(start: int, pages: int) -> Any:
        if not emptied:  # between reading the positions and applying the first page
            with other.recorder.tx(commit=True) as tx:
                other.by_name["claims"].clear(tx)
                tx.execute(
                    f"DELETE FROM {other.recorder.tracking_table} WHERE application_name = 'claims'"
                )
            emptied.append(start)
        return read(start, pages)

    views._read = read_after_another_runner_emptied_claims  # type: ignore[method-assign]
    views.catch_up()
    assert emptied and emptied[0] > 0
    assert views.positions()["claims"] == views.positions()["timeline"]
    live = digest(views)
    views.rebuild()
    assert digest(views) == live


def test_an_as_of_replay_leaves_the_live_views_memory_alone(hub: Hub) -> None:
    views = Projections(hub)
    first = hub.record(touchpoint(customer=LI, occurred_at="2026-11-01T09:00:00Z"))
    views.catch_up()
    between = hub.clock()
    hub.record(touchpoint(customer=LI, occurred_at="2026-11-02T09:00:00Z"))
    views.catch_up()
    then = views.as_of(
        first.customer_id, between, lambda tx: reads.read_profile(tx, first.customer_id)
    )
    assert then["touchpoints"] == 1
    hub.record(touchpoint(customer=LI, occurred_at="2026-11-03T09:00:00Z"))
    views.catch_up()
    assert profile(views, first.customer_id)["touchpoints"] == 3
