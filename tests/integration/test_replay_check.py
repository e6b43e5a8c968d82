"""`hub verify --projections` on both stores: every projection rebuilt into scratch tables and
compared with the live views at their tracked positions; a view row tampered in the database is
named (projection, table, key), and the live views and their tracking are left as they were."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from api.cli import main
from hub.app import Hub
from projections.replay import check_projections
from projections.runner import Projections
from tests.factories import money, touchpoint
from tests.stores import RawStore, cli_env


@pytest.fixture
def raw(hub: Hub, store_env: dict[str, str]) -> Iterator[RawStore]:
    store = RawStore(hub, store_env)
    yield store
    store.close()


def some_history(hub: Hub) -> tuple[str, str]:
    """Two customers with orders, calls, a claim, a correction, an open email and a merge."""
    ada = hub.record(
        touchpoint(
            source={"channel": "web", "id": "order-1"},
            type="order.placed",
            customer={"email": "ada@example.com"},
            actor=None,
            data={"order_id": "1", "total": money("19.90")},
        )
    ).customer_id
    hub.record(touchpoint(customer={"id": ada}, claims=[{"subject": "answer:x", "value": "yes"}]))
    hub.record(
        touchpoint(
            customer={"id": ada},
            claims=[{"subject": "answer:x", "value": "no"}],
            supersedes={"subjects": ["answer:x"], "reason": "misread the order"},
        )
    )
    grace = hub.record(
        touchpoint(
            source={"channel": "email", "id": "<m1@example.com>"},
            type="email.received",
            customer={"email": "grace@example.com"},
            actor=None,
            data={"subject": "Where is my parcel?"},
        )
    ).customer_id
    hub.merge(ada, grace)
    return ada, grace


def caught_up(hub: Hub) -> Projections:
    views = Projections(hub, page_size=3)  # small pages: the replay crosses page boundaries
    views.catch_up()
    return views


def run_verify(
    store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any, *args: str
) -> tuple[int, str]:
    for name, value in cli_env(store_env).items():
        monkeypatch.setenv(name, value)
    code = main(["verify", "--projections", *args])
    return code, capsys.readouterr().out


def test_live_views_of_an_untouched_store_match_their_rebuild(hub: Hub) -> None:
    some_history(hub)
    views = caught_up(hub)
    report = check_projections(views)
    assert report.ok, report.as_dict()
    assert {v.name for v in report.views} == set(views.names)
    timeline = next(v for v in report.views if v.name == "timeline")
    assert sum(t.live_rows for t in timeline.tables) == 4


def test_views_behind_the_log_are_compared_at_their_own_position(hub: Hub) -> None:
    ada, _ = some_history(hub)
    views = caught_up(hub)
    at = views.positions()
    hub.record(touchpoint(customer={"id": ada}))  # the log moves on; the views do not
    report = check_projections(views)
    assert report.ok, report.as_dict()
    assert {v.name: v.position for v in report.views} == at
    assert views.positions() == at  # the check did not advance the live views


def test_a_view_rebuilt_alone_is_compared_at_its_own_position(hub: Hub) -> None:
    some_history(hub)
    views = caught_up(hub)
    with views.recorder.tx(commit=True) as tx:  # the claims view as if still rebuilding
        views.by_name["claims"].clear(tx)
        tx.execute(f"DELETE FROM {views.recorder.tracking_table} WHERE application_name = 'claims'")
    report = check_projections(views)
    assert report.ok, report.as_dict()
    assert {v.name: v.position for v in report.views}["claims"] == 0


def test_a_tampered_view_row_is_named_with_its_projection_table_and_key(
    hub: Hub, raw: RawStore
) -> None:
    ada, _ = some_history(hub)
    views = caught_up(hub)
    ((doc,),) = raw.execute("SELECT doc FROM view_profile WHERE stream = {p}", (ada,))
    forged = orjson.loads(doc)
    forged["touchpoints"] = 99
    raw.execute(
        "UPDATE view_profile SET doc = {p} WHERE stream = {p}",
        (orjson.dumps(forged).decode(), ada),
    )
    report = check_projections(views)
    assert not report.ok
    bad = [v for v in report.views if not v.ok]
    assert [v.name for v in bad] == ["profile"]
    assert bad[0].live_digest != bad[0].rebuilt_digest
    (table,) = [t for t in bad[0].tables if t.differences]
    assert table.table == "view_profile"
    (found,) = table.examples
    assert (found["kind"], found["key"], list(found["columns"])) == (
        "differs",
        {"stream": ada},
        ["doc"],
    )
    assert table.differences == 1


def test_deleted_and_inserted_view_rows_are_named_missing_and_unexpected(
    hub: Hub, raw: RawStore
) -> None:
    ada, grace = some_history(hub)
    views = caught_up(hub)
    raw.execute("DELETE FROM view_profile WHERE stream = {p}", (grace,))
    raw.execute(
        "INSERT INTO view_profile (stream, doc) VALUES ({p}, {p})",
        ("00000000-0000-0000-0000-000000000001", "{}"),
    )
    (profile,) = [v for v in check_projections(views).views if v.name == "profile"]
    (table,) = [t for t in profile.tables if t.differences]
    assert table.table == "view_profile"
    assert sorted((e["kind"], e["key"]["stream"]) for e in table.examples) == sorted(
        [("missing", grace), ("unexpected", "00000000-0000-0000-0000-000000000001")]
    )
    assert table.differences == 2


def test_the_check_leaves_live_views_and_tracking_untouched(hub: Hub, raw: RawStore) -> None:
    some_history(hub)
    views = caught_up(hub)
    before = raw.execute("SELECT stream, doc FROM view_profile ORDER BY stream")
    positions = views.positions()
    check_projections(views)
    assert raw.execute("SELECT stream, doc FROM view_profile ORDER BY stream") == before
    assert views.positions() == positions
    tables = raw.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        if raw.sqlite
        else "SELECT table_schema FROM information_schema.tables "
        "WHERE starts_with(table_schema, 'hub_replay_')"
    )
    assert [t for t in tables if "replay" in str(t)] == []  # the scratch tables are gone


def test_cli_exits_zero_on_a_clean_store_and_one_naming_a_tampered_row(
    hub: Hub, raw: RawStore, store_env: dict[str, str], monkeypatch: Any, capsys: Any
) -> None:
    ada, _ = some_history(hub)
    caught_up(hub)
    code, out = run_verify(store_env, monkeypatch, capsys)
    assert code == 0, out
    assert "projection timeline: OK" in out
    assert "projections OK" in out
    raw.execute(
        "UPDATE view_timeline SET channel = 'fax' WHERE stream = {p} AND channel = 'web'", (ada,)
    )
    code, out = run_verify(store_env, monkeypatch, capsys)
    assert code == 1
    assert "DIFFERS projection timeline" in out
    assert "table view_timeline: 1 differing row(s)" in out
    assert f"differs stream={ada}" in out
    assert 'channel: live "fax", rebuilt "web"' in out
    code, out = run_verify(store_env, monkeypatch, capsys, "--json")
    assert code == 1
    doc = orjson.loads(out)
    assert doc["ok"] is False and doc["breaks"] == []
    assert [v["name"] for v in doc["projections"]["views"] if not v["ok"]] == ["timeline"]


def test_projections_check_refuses_a_file_or_a_customer(
    store_env: dict[str, str], monkeypatch: Any, capsys: Any
) -> None:
    code, _ = run_verify(store_env, monkeypatch, capsys, "--customer", "x")
    assert code == 2


def test_views_caught_up_past_an_erasure_match_their_rebuild(hub: Hub) -> None:
    ada, _ = some_history(hub)
    views = caught_up(hub)
    hub.erase(ada)
    views.catch_up()
    report = check_projections(views)
    assert report.ok, report.as_dict()


def test_views_following_new_writes_during_the_check_are_no_false_alarm(hub: Hub) -> None:
    ada, _ = some_history(hub)
    live = Projections(hub, page_size=3, poll_interval=0.01)
    live.catch_up()
    before = live.positions()["timeline"]
    live.start()
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            hub.record(touchpoint(customer={"id": ada}))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        reports = [check_projections(Projections(hub, page_size=3)) for _ in range(3)]
    finally:
        stop.set()
        writer.join()
        live.stop()
    assert all(r.ok for r in reports), [r.as_dict() for r in reports if not r.ok]
    assert live.positions()["timeline"] > before  # the views did move on meanwhile
