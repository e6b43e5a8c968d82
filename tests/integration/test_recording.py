"""Recording touchpoints on both stores: rules at the append, record mode, dry run, batches."""

from __future__ import annotations

from typing import Any

import pytest

from hub.app import Hub
from hub.customer import RejectedAttempt
from hub.errors import ConflictError
from tests.factories import money, touchpoint


def all_events(hub: Hub) -> list[Any]:
    return list(hub.recorder.select_notifications(1, 100_000))


def customer_events(hub: Hub, customer_id: str) -> list[dict[str, Any]]:
    return [e for e in hub.history(customer_id) if e["customer_id"] == customer_id]


def placed(hub: Hub, order_id: str = "A-17") -> str:
    return hub.record(
        touchpoint(
            type="order.placed",
            source={"channel": "web", "id": f"order-{order_id}"},
            data={"order_id": order_id, "total": money("19.90")},
        )
    ).customer_id


def claim(subject: str, value: Any, **extra: Any) -> Any:
    return touchpoint(claims=[{"subject": subject, "value": value}], **extra)


def test_conflicting_claim_is_rejected_and_nothing_is_appended_to_the_customer(hub: Hub) -> None:
    customer_id = placed(hub)
    before = customer_events(hub, customer_id)
    with pytest.raises(ConflictError) as error:
        hub.record(claim("order:A-17:status", "shipped"))
    assert error.value.customer_id == customer_id
    assert [c.rule for c in error.value.conflicts] == ["claim-vs-fact"]
    assert customer_events(hub, customer_id) == before


def test_rejected_attempt_is_kept_for_auditors_outside_the_customer_stream(hub: Hub) -> None:
    customer_id = placed(hub)
    with pytest.raises(ConflictError):
        hub.record(claim("order:A-17:status", "shipped", source={"channel": "phone", "id": "x1"}))
    (rejection,) = [
        hub.mapper.to_domain_event(n)
        for n in all_events(hub)
        if n.topic.endswith("RejectedAttempt.Recorded")
    ]
    assert isinstance(rejection, RejectedAttempt.Recorded)
    assert rejection.customer_id == customer_id
    assert rejection.touchpoint["source_id"] == "x1"
    assert rejection.conflicts[0]["rule"] == "claim-vs-fact"


def test_record_mode_appends_the_contradiction_and_names_it(hub: Hub) -> None:
    placed(hub)
    accepted = hub.record(claim("order:A-17:status", "shipped"), mode="record")
    assert [c["rule"] for c in accepted.detected_conflicts] == ["claim-vs-fact"]
    (event,) = [e for e in hub.history(accepted.customer_id) if e["position"] == accepted.position]
    assert event["detected_conflicts"][0]["subject"] == "order:A-17:status"
    assert event["mode"] == "record"


def test_dry_run_reports_conflicts_and_appends_nothing(hub: Hub) -> None:
    placed(hub)
    before = hub.recorder.max_notification_id()
    result = hub.check(claim("order:A-17:status", "shipped"))
    assert not result.ok
    assert [c.rule for c in result.conflicts] == ["claim-vs-fact"]
    assert hub.check(claim("order:A-17:status", "placed")).ok
    assert hub.recorder.max_notification_id() == before


def test_dry_run_for_an_unknown_customer_is_ok_and_creates_no_one(hub: Hub) -> None:
    result = hub.check(touchpoint(customer={"email": "new@example.com"}))
    assert result.ok and result.customer_id is None
    assert hub.find_customer("email:new@example.com") is None


def test_a_claim_about_a_missing_order_creates_no_customer(hub: Hub) -> None:
    with pytest.raises(ConflictError):
        hub.record(claim("order:A-1:status", "shipped", customer={"email": "nobody@example.com"}))
    assert hub.find_customer("email:nobody@example.com") is None


def test_batch_items_see_the_items_before_them(hub: Hub) -> None:
    outcomes = hub.record_batch(
        [
            touchpoint(
                type="order.placed",
                source={"channel": "web", "id": "o-1"},
                data={"order_id": "A-1", "total": money("5.00")},
            ),
            claim("order:A-1:status", "placed"),
            claim("order:A-1:status", "shipped"),
        ]
    )
    assert [getattr(o, "status", 201) for o in outcomes] == [201, 201, 409]
    assert outcomes[0].position < outcomes[1].position


def test_batch_keeps_going_past_a_bad_item(hub: Hub) -> None:
    outcomes = hub.record_batch([touchpoint(), claim("order:X:status", "shipped"), touchpoint()])
    assert isinstance(outcomes[1], ConflictError)
    assert outcomes[0].customer_id == outcomes[2].customer_id


def test_contradicting_quotes_from_two_hubs_one_store(make_hub) -> None:
    first, second = make_hub(), make_hub()
    quote = {"sku": "SKU-1", "price": money("19.90"), "valid_until": "2026-12-01T00:00:00Z"}
    first.record(touchpoint(type="quote.given", data=quote))
    cheaper = {**quote, "price": money("17.00")}
    with pytest.raises(ConflictError) as error:
        second.record(touchpoint(type="quote.given", data=cheaper))
    assert error.value.conflicts[0].earlier["value"] == money("19.90")


def test_history_is_hash_chained_per_stream(hub: Hub) -> None:
    customer_id = placed(hub)
    hub.record(touchpoint())
    events = customer_events(hub, customer_id)
    assert events[0]["prev_hash"] == ""
    for before, after in zip(events, events[1:], strict=False):
        assert after["prev_hash"] == before["hash"]
