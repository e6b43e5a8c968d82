"""Each projection on hand-written event sequences, on both stores: timeline order and paging,
profile, open items (reply rule, SLA, overdue), claims (corrections, expiry), conflicts,
analytics, merges and `as_of`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.app import Accepted, Hub
from hub.errors import ConflictError, CustomerNotFound
from projections import analytics, conflicts, open_items, reads
from projections.base import norm_time
from projections.runner import Projections
from tests.factories import money, touchpoint

NOW = "2026-11-10T12:00:00.000000Z"
LI = {"email": "li.wei@example.com"}


@pytest.fixture
def views(hub: Hub) -> Projections:
    return Projections(hub)


def record(
    hub: Hub, type: str, data: dict[str, Any], at: str = "2026-11-03T09:30:00Z", **more: Any
) -> Accepted:
    return hub.record(touchpoint(type=type, data=data, occurred_at=at, **more))


def email_in(hub: Hub, message_id: str, at: str, **more: Any) -> Accepted:
    source = {"channel": "email", "id": message_id}
    return record(
        hub, "email.received", {"subject": "Where is my order?"}, at, source=source, **more
    )


def call_out(hub: Hub, at: str, **more: Any) -> Accepted:
    return record(hub, "call.outbound", {"summary": "called back"}, at, **more)


def items(views: Projections, customer: str, now: str = NOW) -> dict[str, dict[str, Any]]:
    doc = views.read(lambda tx: reads.read_open_items(tx, customer, now, include_closed=True))
    return {item["item_id"]: item for item in doc["open_items"]}


# -- timeline ----------------------------------------------------------------------------


def test_timeline_is_newest_first_by_occurred_at_whatever_the_arrival_order(
    hub: Hub, views: Projections
) -> None:
    first = record(hub, "note.added", {"text": "late news"}, "2026-11-05T10:00:00Z")
    record(hub, "note.added", {"text": "old news"}, "2026-11-01T10:00:00+02:00")
    record(hub, "note.added", {"text": "middle"}, "2026-11-03T10:00:00Z")
    views.catch_up()
    doc = views.read(lambda tx: reads.read_timeline(tx, first.customer_id))
    assert [e["data"]["text"] for e in doc["entries"]] == ["late news", "middle", "old news"]


def test_timeline_filters_by_channel_type_and_time_and_pages_with_a_cursor(
    hub: Hub, views: Projections
) -> None:
    customer = email_in(hub, "<m0>", "2026-11-01T08:00:00Z").customer_id
    for day in range(1, 8):
        record(hub, "note.added", {"text": f"day {day}"}, f"2026-11-0{day}T09:00:00Z")
    views.catch_up()

    def page(**filters: Any) -> dict[str, Any]:
        return views.read(lambda tx: reads.read_timeline(tx, customer, **filters))

    assert [e["type"] for e in page(channels=["email"])["entries"]] == ["email.received"]
    assert len(page(types=["note.added"])["entries"]) == 7
    window = page(since=norm_time("2026-11-03T00:00:00Z"), until=norm_time("2026-11-05T00:00:00Z"))
    assert [e["data"]["text"] for e in window["entries"]] == ["day 4", "day 3"]
    seen, cursor = [], None
    while True:
        answer = page(limit=3, cursor=cursor)
        seen += [e["position"] for e in answer["entries"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 8


# -- open items --------------------------------------------------------------------------


def test_inbound_email_awaits_a_reply_until_a_later_outbound_call(
    hub: Hub, views: Projections
) -> None:
    asked = email_in(hub, "<q1>", "2026-11-03T09:00:00Z")
    views.catch_up()
    assert items(views, asked.customer_id)[f"reply:{asked.touchpoint_id}"]["open"] is True
    call_out(hub, "2026-11-03T11:00:00Z")
    views.catch_up()
    answered = items(views, asked.customer_id)[f"reply:{asked.touchpoint_id}"]
    assert (answered["open"], answered["closed_at"]) == (False, "2026-11-03T11:00:00.000000Z")


def test_reply_naming_another_message_leaves_this_one_open(hub: Hub, views: Projections) -> None:
    one = email_in(hub, "<q1>", "2026-11-03T09:00:00Z")
    two = email_in(hub, "<q2>", "2026-11-03T09:05:00Z")
    record(
        hub,
        "email.sent",
        {"subject": "Re"},
        "2026-11-03T10:00:00Z",
        source={"channel": "email", "id": "<a1>"},
        in_reply_to=["email:<q2>"],
    )
    views.catch_up()
    found = items(views, one.customer_id)
    assert found[f"reply:{one.touchpoint_id}"]["open"] is True
    assert found[f"reply:{two.touchpoint_id}"]["open"] is False


def test_marketing_mail_does_not_answer_a_customer(hub: Hub, views: Projections) -> None:
    asked = email_in(hub, "<q1>", "2026-11-03T09:00:00Z")
    record(hub, "marketing.sent", {"campaign": "autumn", "asset": "a1"}, "2026-11-03T10:00:00Z")
    views.catch_up()
    assert items(views, asked.customer_id)[f"reply:{asked.touchpoint_id}"]["open"] is True


def test_message_recorded_after_a_later_outbound_contact_arrives_answered(
    hub: Hub, views: Projections
) -> None:
    call_out(hub, "2026-11-03T12:00:00Z")
    late = email_in(hub, "<q1>", "2026-11-03T09:00:00Z")  # older mail, learnt afterwards
    views.catch_up()
    assert items(views, late.customer_id)[f"reply:{late.touchpoint_id}"]["open"] is False


def test_urgent_repair_is_overdue_after_four_hours_judged_when_read(
    hub: Hub, views: Projections
) -> None:
    opened = record(
        hub,
        "service.opened",
        {"request_id": "R-9", "kind": "repair", "priority": "urgent"},
        "2026-11-03T08:00:00Z",
    )
    record(hub, "service.opened", {"request_id": "R-10", "kind": "repair"}, "2026-11-03T08:00:00Z")
    views.catch_up()
    before = items(views, opened.customer_id, now="2026-11-03T11:59:00.000000Z")
    after = items(views, opened.customer_id, now="2026-11-03T12:01:00.000000Z")
    assert before["service:R-9"]["overdue"] is False
    assert after["service:R-9"]["overdue"] is True
    assert after["service:R-10"]["due_at"] == "2026-11-06T08:00:00.000000Z"
    overdue = views.read(
        lambda tx: open_items.queue(tx, "2026-11-03T12:01:00.000000Z", overdue=True)
    )
    assert [item["item_id"] for item in overdue] == ["service:R-9"]


def test_queue_filters_by_kind_channel_and_assignee(hub: Hub, views: Projections) -> None:
    record(
        hub,
        "service.opened",
        {"request_id": "R-1", "kind": "complaint"},
        actor={"kind": "agent", "id": "agent-9"},
    )
    email_in(hub, "<q1>", "2026-11-03T09:00:00Z", customer={"email": "other@example.com"})
    record(
        hub,
        "web.registered",
        {"event_id": "E-1"},
        source={"channel": "web", "id": "reg-1"},
        customer={"email": "third@example.com"},
    )
    views.catch_up()

    def kinds(**filters: Any) -> list[str]:
        return sorted(
            i["kind"] for i in views.read(lambda tx: open_items.queue(tx, NOW, **filters))
        )

    assert kinds() == ["complaint", "registration", "reply"]
    assert kinds(kinds=["reply"]) == ["reply"]
    assert kinds(channels=["web"]) == ["registration"]
    assert kinds(assignee="agent-9") == ["complaint"]


def test_resolved_request_and_kept_promise_close_their_items(hub: Hub, views: Projections) -> None:
    opened = record(hub, "service.opened", {"request_id": "R-1", "kind": "repair"})
    record(
        hub,
        "promise.made",
        {"promise_id": "P-1", "what": "a loan device", "due": "2026-11-04T00:00:00Z"},
    )
    record(hub, "service.resolved", {"request_id": "R-1"}, "2026-11-04T09:30:00Z")
    record(hub, "promise.kept", {"promise_id": "P-1"}, "2026-11-03T20:00:00Z")
    views.catch_up()
    found = items(views, opened.customer_id)
    assert found["service:R-1"]["open"] is False and found["promise:P-1"]["open"] is False
    assert found["service:R-1"]["breached"] is False
    levels = views.read(lambda tx: analytics.service_levels(tx, NOW, None, None))["all"]
    assert levels["resolution"] == {"count": 1, "median_s": 86400.0, "p90_s": 86400.0}


# -- claims ------------------------------------------------------------------------------


def test_correction_supersedes_the_claim_and_shows_the_reason(hub: Hub, views: Projections) -> None:
    said = record(hub, "call.outbound", {}, claims=[{"subject": "answer:warranty", "value": "2y"}])
    record(
        hub,
        "call.outbound",
        {},
        "2026-11-04T09:00:00Z",
        claims=[{"subject": "answer:warranty", "value": "3y"}],
        supersedes={"subjects": ["answer:warranty"], "reason": "misread the contract"},
    )
    views.catch_up()
    doc = views.read(lambda tx: reads.read_claims(tx, said.customer_id, NOW))
    assert [(c["subject"], c["value"]) for c in doc["claims"]] == [("answer:warranty", "3y")]
    (ended,) = doc["ended"]
    assert (ended["value"], ended["status"], ended["reason"]) == (
        "2y",
        "superseded",
        "misread the contract",
    )


def test_quote_past_its_validity_is_shown_expired_not_in_force(
    hub: Hub, views: Projections
) -> None:
    quoted = record(
        hub,
        "quote.given",
        {"sku": "SKU-1", "price": money("19.90"), "valid_until": "2026-11-07T00:00:00Z"},
    )
    views.catch_up()
    before = views.read(
        lambda tx: reads.read_claims(tx, quoted.customer_id, "2026-11-06T00:00:00.000000Z")
    )
    after = views.read(lambda tx: reads.read_claims(tx, quoted.customer_id, NOW))
    assert [c["subject"] for c in before["claims"]] == ["price:SKU-1"]
    assert after["claims"] == [] and after["ended"][0]["status"] == "expired"


def test_fact_of_the_shop_overtakes_an_earlier_status_claim(hub: Hub, views: Projections) -> None:
    placed = record(
        hub,
        "order.placed",
        {"order_id": "A-1", "total": money("10.00")},
        source={"channel": "web", "id": "o-1"},
    )
    call_out(
        hub, "2026-11-03T10:00:00Z", claims=[{"subject": "order:A-1:status", "value": "placed"}]
    )
    record(
        hub,
        "order.status_changed",
        {"order_id": "A-1", "status": "shipped"},
        "2026-11-04T00:00:00Z",
        source={"channel": "web", "id": "o-1-s"},
    )
    views.catch_up()
    doc = views.read(lambda tx: reads.read_claims(tx, placed.customer_id, NOW))
    assert doc["claims"] == [] and doc["ended"][0]["status"] == "overtaken"


# -- profile, merges, as_of --------------------------------------------------------------


def test_profile_has_latest_contact_with_provenance_consent_and_orders(
    hub: Hub, views: Projections
) -> None:
    first = record(hub, "profile.updated", {"name": "Li Wei (new)"}, "2026-11-05T00:00:00Z")
    record(
        hub,
        "profile.updated",
        {"name": "Li Wei (old)"},
        "2026-11-01T00:00:00Z",
        source={"channel": "web", "id": "p-1"},
    )
    record(hub, "consent.changed", {"purpose": "marketing", "granted": False})
    record(
        hub,
        "order.placed",
        {"order_id": "A-1", "total": money("10.00")},
        source={"channel": "web", "id": "o-1"},
    )
    record(
        hub,
        "order.placed",
        {"order_id": "A-2", "total": money("5.50")},
        source={"channel": "web", "id": "o-2"},
    )
    record(hub, "service.opened", {"request_id": "R-1"})
    views.catch_up()
    doc = views.read(lambda tx: reads.read_profile(tx, first.customer_id))
    assert doc["contact"]["name"]["value"] == "Li Wei (new)"
    assert doc["contact"]["name"]["channel"] == "phone"
    assert doc["consent"]["marketing"]["value"] is False
    assert doc["orders"] == {"count": 2, "value": [{"amount": "15.50", "currency": "EUR"}]}
    assert doc["open_items"] == 1
    assert (doc["first_contact"], doc["last_contact"]) == (
        "2026-11-01T00:00:00.000000Z",
        "2026-11-05T00:00:00.000000Z",
    )
    assert doc["identities"] == ["email:li.wei@example.com"]


def test_survivor_reads_include_the_merged_customer_and_the_loser_says_where_it_went(
    hub: Hub, views: Projections
) -> None:
    a = email_in(hub, "<a1>", "2026-11-03T09:00:00Z")
    b = email_in(hub, "<b1>", "2026-11-03T09:10:00Z", customer={"phone": "+4930123456"})
    hub.merge(a.customer_id, b.customer_id)
    call_out(hub, "2026-11-03T12:00:00Z")  # answers both messages: they are one customer now
    views.catch_up()
    timeline = views.read(lambda tx: reads.read_timeline(tx, a.customer_id))
    assert {e["customer_id"] for e in timeline["entries"]} == {a.customer_id, b.customer_id}
    assert all(not item["open"] for item in items(views, a.customer_id).values())
    loser = views.read(lambda tx: reads.read_profile(tx, b.customer_id))
    assert loser["merged_into"] == a.customer_id
    survivor = views.read(lambda tx: reads.read_profile(tx, a.customer_id))
    assert survivor["identities"] == ["email:li.wei@example.com", "phone:+4930123456"]

    hub.unmerge(a.customer_id, b.customer_id)
    views.catch_up()
    timeline = views.read(lambda tx: reads.read_timeline(tx, a.customer_id))
    assert {e["customer_id"] for e in timeline["entries"]} == {a.customer_id}
    assert views.read(lambda tx: reads.read_profile(tx, b.customer_id))["merged_into"] is None


def test_as_of_shows_the_claim_before_its_correction_and_before_a_merge(
    hub: Hub, views: Projections
) -> None:
    said = record(hub, "call.outbound", {}, claims=[{"subject": "answer:x", "value": "yes"}])
    other = email_in(hub, "<b1>", "2026-11-03T09:10:00Z", customer={"phone": "+4930123456"})
    moment = datetime.now(UTC)
    time.sleep(0.01)
    record(
        hub,
        "call.outbound",
        {},
        claims=[{"subject": "answer:x", "value": "no"}],
        supersedes={"subjects": ["answer:x"], "reason": "wrong"},
    )
    hub.merge(said.customer_id, other.customer_id)
    views.catch_up()
    customer = said.customer_id
    now = norm_time(moment) or ""
    then = views.as_of(customer, moment, lambda tx: reads.read_claims(tx, customer, now))
    assert [c["value"] for c in then["claims"]] == ["yes"]
    timeline = views.as_of(customer, moment, lambda tx: reads.read_timeline(tx, customer))
    assert {e["customer_id"] for e in timeline["entries"]} == {customer}
    today = views.as_of(customer, datetime.now(UTC), lambda tx: reads.read_timeline(tx, customer))
    assert today == views.read(lambda tx: reads.read_timeline(tx, customer))
    assert len(today["entries"]) == 3
    with pytest.raises(CustomerNotFound):
        views.as_of(
            customer, moment - timedelta(days=1), lambda tx: reads.read_profile(tx, customer)
        )


# -- conflicts and analytics -------------------------------------------------------------


def test_rejected_attempt_and_record_mode_contradiction_are_both_listed(
    hub: Hub, views: Projections
) -> None:
    placed = record(
        hub,
        "order.placed",
        {"order_id": "A-1", "total": money("10.00")},
        source={"channel": "web", "id": "o-1"},
    )
    wrong = [{"subject": "order:A-1:status", "value": "shipped"}]
    with pytest.raises(ConflictError):
        call_out(hub, "2026-11-03T10:00:00Z", claims=wrong)
    hub.record(touchpoint(claims=wrong, occurred_at="2026-11-03T11:00:00Z"), mode="record")
    views.catch_up()
    found = views.read(lambda tx: conflicts.conflicts(tx, streams=[placed.customer_id]))
    assert sorted(c["outcome"] for c in found["conflicts"]) == ["detected", "rejected"]
    assert {c["rule"] for c in found["conflicts"]} == {"claim-vs-fact"}
    assert views.read(lambda tx: conflicts.conflicts(tx, rules=["consent"]))["conflicts"] == []


def test_touchpoints_are_counted_by_channel_type_and_agent(hub: Hub, views: Projections) -> None:
    email_in(hub, "<q1>", "2026-11-03T09:00:00Z")
    call_out(hub, "2026-11-03T10:00:00Z")
    call_out(hub, "2026-11-04T10:00:00Z")
    views.catch_up()
    rows = views.read(lambda tx: analytics.touchpoint_counts(tx, ["channel", "agent"], None, None))
    assert rows == [
        {"channel": "email", "agent": "agent-17", "count": 1},
        {"channel": "phone", "agent": "agent-17", "count": 2},
    ]
    days = views.read(lambda tx: analytics.touchpoint_counts(tx, ["day"], "2026-11-04", None))
    assert days == [{"day": "2026-11-04", "count": 1}]
    levels = views.read(lambda tx: analytics.service_levels(tx, NOW, None, None))["all"]
    assert levels["first_response"]["median_s"] == 3600.0
