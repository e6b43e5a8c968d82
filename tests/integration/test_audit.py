"""Audit on both stores: tampering done in the database is found and named by `hub verify`;
exports verify offline; statements answer what had been told by a moment."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from api.cli import main
from hub.app import Hub
from hub.codec import CHAIN, chain_hash, dumps
from hub.export import verify_export
from tests.factories import money, touchpoint
from tests.stores import RawStore, cli_env


@pytest.fixture
def raw(hub: Hub, store_env: dict[str, str]) -> Iterator[RawStore]:
    store = RawStore(hub, store_env)
    yield store
    store.close()


def five_calls(hub: Hub, email: str = "ada@example.com") -> str:
    customer_id = ""
    for n in range(5):
        accepted = hub.record(
            touchpoint(
                customer={"email": email},
                data={"summary": f"call number {n}", "duration_s": 60 + n},
            )
        )
        customer_id = accepted.customer_id
    return customer_id


def kinds(report: Any) -> list[tuple[str, int | None]]:
    return [(b.kind, b.version) for b in report.breaks]


def run_verify(
    store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any, *args: str
) -> tuple[int, str]:
    for name, value in cli_env(store_env).items():
        monkeypatch.setenv(name, value)
    code = main(["verify", *args])
    return code, capsys.readouterr().out


def test_untouched_store_verifies(
    hub: Hub, store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    first = five_calls(hub)
    second = five_calls(hub, "grace@example.com")
    hub.merge(first, second)
    assert hub.verify().ok
    # registration, 5 calls and the merge, in each of the two streams
    assert hub.verify(first).events == 14
    code, out = run_verify(store_env, monkeypatch, capsys)
    assert code == 0
    assert out.startswith("OK; 2 stream(s), 14 event(s)")


def test_edited_payload_is_named(
    hub: Hub, raw: RawStore, store_env: dict[str, str], monkeypatch: Any, capsys: Any
) -> None:
    customer = five_calls(hub)
    state = raw.state(customer, 3).replace(b'"duration_s":61', b'"duration_s":69')
    raw.execute(
        "UPDATE {events} SET state = {p} WHERE originator_id = {p} AND originator_version = 3",
        (state, raw.stream_id(customer)),
    )
    assert kinds(hub.verify()) == [("edited", 3)]
    code, out = run_verify(store_env, monkeypatch, capsys)
    assert code == 1
    assert f"BREAK edited: customer {customer} version 3" in out


def test_removed_event_is_named(hub: Hub, raw: RawStore) -> None:
    customer = five_calls(hub)
    raw.execute(
        "DELETE FROM {events} WHERE originator_id = {p} AND originator_version = 2",
        (raw.stream_id(customer),),
    )
    report = hub.verify(customer)
    assert kinds(report) == [("removed", 3)]
    assert "version 2 missing" in report.breaks[0].detail  # the first call


def test_removed_event_is_named_once_by_the_whole_store_check(hub: Hub, raw: RawStore) -> None:
    customer = five_calls(hub)
    five_calls(hub, "grace@example.com")
    raw.execute(
        "DELETE FROM {events} WHERE originator_id = {p} AND originator_version = 2",
        (raw.stream_id(customer),),
    )
    report = hub.verify()
    assert [(b.kind, b.stream, b.version) for b in report.breaks] == [("removed", customer, 3)]


def test_a_stream_removed_whole_is_named_by_its_source_keys(hub: Hub, raw: RawStore) -> None:
    customer = five_calls(hub)
    other = five_calls(hub, "grace@example.com")
    raw.execute("DELETE FROM {events} WHERE originator_id = {p}", (raw.stream_id(customer),))
    report = hub.verify()
    assert sorted((b.kind, b.stream, b.version) for b in report.breaks) == [
        ("removed", customer, version) for version in range(2, 7)
    ]
    assert hub.verify(other).ok


def test_an_event_rewritten_in_other_bytes_with_the_same_content_still_verifies(
    hub: Hub, raw: RawStore
) -> None:
    # Hashes are over canonical bytes: re-encoding (spacing, key order) is no edit, and a
    # check reading the stored bytes directly must not call it one.
    customer = five_calls(hub)
    content = orjson.loads(raw.state(customer, 3))
    respaced = orjson.dumps(dict(reversed(list(content.items()))), option=orjson.OPT_INDENT_2)
    raw.execute(
        "UPDATE {events} SET state = {p} WHERE originator_id = {p} AND originator_version = 3",
        (respaced, raw.stream_id(customer)),
    )
    assert hub.verify().ok and hub.verify(customer).ok
    edited = respaced.replace(b'"duration_s": 61', b'"duration_s": 69')
    assert edited != respaced
    raw.execute(
        "UPDATE {events} SET state = {p} WHERE originator_id = {p} AND originator_version = 3",
        (edited, raw.stream_id(customer)),
    )
    assert kinds(hub.verify()) == [("edited", 3)]


def test_removed_last_event_is_named_by_its_source_key(hub: Hub, raw: RawStore) -> None:
    customer = five_calls(hub)
    raw.execute(
        "DELETE FROM {events} WHERE originator_id = {p} AND originator_version = 6",
        (raw.stream_id(customer),),
    )
    assert kinds(hub.verify()) == [("removed", 6)]


def test_swapped_versions_are_named(hub: Hub, raw: RawStore) -> None:
    customer = five_calls(hub)
    stream = raw.stream_id(customer)
    update = (
        "UPDATE {events} SET originator_version = {p} "
        "WHERE originator_id = {p} AND originator_version = {p}"
    )
    raw.execute(update, (-1, stream, 2))
    raw.execute(update, (2, stream, 3))
    raw.execute(update, (3, stream, -1))
    report = hub.verify()
    assert kinds(report) == [("reordered", 2), ("reordered", 3)]
    assert "written as version 3" in report.breaks[0].detail


def test_forged_event_with_a_copied_body_is_named(hub: Hub, raw: RawStore) -> None:
    customer = five_calls(hub)
    raw.execute(
        "INSERT INTO {events} (originator_id, originator_version, topic, state) "
        "SELECT originator_id, 7, topic, state FROM {events} "
        "WHERE originator_id = {p} AND originator_version = 2",
        (raw.stream_id(customer),),
    )
    report = hub.verify()
    assert kinds(report) == [("forged", 7)]
    assert "a copy of an earlier event" in report.breaks[0].detail


def test_forged_event_with_a_recomputed_chain_is_named(hub: Hub, raw: RawStore) -> None:
    customer = five_calls(hub)
    head = orjson.loads(raw.state(customer, 6))
    ((topic,),) = raw.execute(
        "SELECT topic FROM {events} WHERE originator_id = {p} AND originator_version = 6",
        (raw.stream_id(customer),),
    )
    forged = {k: v for k, v in head.items() if k != CHAIN}
    forged.update(source_id="forged-1", claims=[{"subject": "refund", "value": money("500")}])
    digest = chain_hash(head[CHAIN]["hash"], customer, 7, topic, dumps(forged))
    forged[CHAIN] = {"prev": head[CHAIN]["hash"], "hash": digest}
    raw.execute(
        "INSERT INTO {events} (originator_id, originator_version, topic, state) "
        "VALUES ({p}, 7, {p}, {p})",
        (raw.stream_id(customer), topic, dumps(forged)),
    )
    report = hub.verify()
    assert kinds(report) == [("forged", 7)]
    assert "no source-key record" in report.breaks[0].detail


def test_a_source_id_nested_before_the_top_level_one_does_not_mislead_the_check(
    hub: Hub, raw: RawStore
) -> None:
    # The check reads a touchpoint's source key off its bytes; a `source_id` nested in a
    # member that sorts first must not be taken for it (the event below is consistent: its
    # hash recomputed, its key record the hub's).
    customer = five_calls(hub)
    head = orjson.loads(raw.state(customer, 6))
    ((topic,),) = raw.execute(
        "SELECT topic FROM {events} WHERE originator_id = {p} AND originator_version = 6",
        (raw.stream_id(customer),),
    )
    content = {k: v for k, v in head.items() if k != CHAIN}
    content["claims"] = [{"source_id": "decoy", "subject": "answer:x", "value": "yes"}]
    prev = head[CHAIN]["prev"]
    content[CHAIN] = {"prev": prev, "hash": chain_hash(prev, customer, 6, topic, dumps(content))}
    raw.execute(
        "UPDATE {events} SET state = {p} WHERE originator_id = {p} AND originator_version = 6",
        (dumps(content), raw.stream_id(customer)),
    )
    assert b'"source_id":"decoy"' in raw.state(customer, 6)
    assert hub.verify().ok, hub.verify().as_dict()
    assert hub.verify(customer).ok


def test_export_round_trips_through_offline_verification(hub: Hub) -> None:
    first = five_calls(hub)
    five_calls(hub, "grace@example.com")
    out = io.BytesIO()
    assert hub.export(out.write) == 12
    lines = out.getvalue().splitlines(keepends=True)
    assert len(lines) == 13  # and the trailer
    report = verify_export(iter(lines))
    assert report.ok, report.as_dict()
    assert report.heads_digest == hub.verify().heads_digest
    doc = orjson.loads(lines[1])  # a touchpoint (lines[0] registers the customer)
    assert {"position", "version", "recorded_at", "hash", "prev_hash", "source"} <= set(doc)
    mine = io.BytesIO()
    assert hub.export(mine.write, customer_id=first) == 6
    assert verify_export(iter(mine.getvalue().splitlines(keepends=True))).ok


def test_export_since_a_position_holds_only_later_events_and_verifies(hub: Hub) -> None:
    five_calls(hub)
    out = io.BytesIO()
    hub.export(out.write, since=3)
    lines = out.getvalue().splitlines(keepends=True)
    assert [orjson.loads(line)["position"] for line in lines[:-1]] == [4, 5, 6]
    assert verify_export(iter(lines)).ok


@pytest.mark.parametrize(
    ("old", "new"),
    [(b'"duration_s":63', b'"duration_s":68'), (b'"version":2', b'"version":3')],
)
def test_export_edited_by_one_byte_fails(hub: Hub, old: bytes, new: bytes) -> None:
    five_calls(hub)
    out = io.BytesIO()
    hub.export(out.write)
    edited = out.getvalue().replace(old, new, 1)
    assert edited != out.getvalue()
    assert not verify_export(iter(edited.splitlines(keepends=True))).ok


def test_export_with_a_line_removed_fails(hub: Hub) -> None:
    five_calls(hub)
    out = io.BytesIO()
    hub.export(out.write)
    lines = out.getvalue().splitlines(keepends=True)
    report = verify_export(iter(lines[:2] + lines[3:]))
    assert ("removed", 4) in kinds(report)  # noticed at the event after the gap


def test_statements_as_of_show_what_had_been_told_then(hub: Hub) -> None:
    def quote(price: str, source: str, **extra: Any) -> Any:
        return touchpoint(
            type="quote.given",
            source={"channel": "sales", "id": source},
            data={"sku": "SKU-1", "price": money(price)},
            **extra,
        )

    customer = hub.record(quote("19.90", "q-1")).customer_id
    time.sleep(0.01)
    before_correction = datetime.now(UTC)
    time.sleep(0.01)
    hub.record(
        quote("18.00", "q-2", supersedes={"subjects": ["price:SKU-1"], "reason": "pricing error"})
    )
    then = hub.statements(customer, before_correction)
    assert [(s["value"], s["status"]) for s in then] == [(money("19.90"), "in force")]
    assert then[0]["channel"] == "sales" and then[0]["actor"]["id"] == "agent-17"
    now = hub.statements(customer)
    assert [(s["value"], s["status"]) for s in now] == [
        (money("19.90"), "superseded"),
        (money("18.00"), "in force"),
    ]
    assert now[0]["correction_reason"] == "pricing error"


def test_a_verification_pausing_between_pages_outlives_the_idle_timeout(
    store_env: dict[str, str],
) -> None:
    # The library ends a transaction idle for POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT;
    # a verification of millions of events pauses longer than that between two pages.
    hub = Hub({**store_env, "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "1"})
    pause = 0.0 if store_env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite" else 1.3
    try:
        five_calls(hub)
        five_calls(hub, "grace@example.com")
        events, keys = 0, 0
        for rows in hub.store.scan_rows(6):
            events += len(rows)
            time.sleep(pause)
        for key_rows in hub.store.scan_source_keys(6):
            keys += len(key_rows)
            time.sleep(pause)
        assert (events, keys) == (12, 10)
        assert hub.verify().ok
    finally:
        hub.close()
