"""The customer's Atom feed: valid Atom (feedparser reads it without complaint) holding the
customer-visible updates, newest first, and nothing of the conversations."""

from __future__ import annotations

from typing import Any

import feedparser
from fastapi.testclient import TestClient

from tests.factories import money, raw_touchpoint

CUSTOMER = {"email": "ana.costa@example.com"}


def record(client: TestClient, kind: str, at: str, data: dict[str, Any], channel: str) -> Any:
    answer = client.post(
        "/v1/touchpoints",
        json=raw_touchpoint(
            source={"channel": channel, "id": f"{kind}-{at}"},
            type=kind,
            occurred_at=at,
            customer=CUSTOMER,
            actor=None,
            data=data,
        ),
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def history(client: TestClient) -> dict[str, Any]:
    record(
        client,
        "order.placed",
        "2026-11-01T09:00:00Z",
        {"order_id": "A-17", "total": money("19.90")},
        "web",
    )
    record(
        client, "email.received", "2026-11-01T10:00:00Z", {"subject": "Private question"}, "email"
    )
    record(
        client,
        "order.status_changed",
        "2026-11-02T09:00:00Z",
        {"order_id": "A-17", "status": "shipped"},
        "erp",
    )
    record(
        client,
        "service.opened",
        "2026-11-03T09:00:00Z",
        {"request_id": "R-9", "subject": "Leaking tap", "kind": "repair"},
        "service",
    )
    record(
        client,
        "note.added",
        "2026-11-03T09:30:00Z",
        {"text": "Internal: difficult customer"},
        "service",
    )
    record(
        client,
        "service.visit_scheduled",
        "2026-11-04T09:00:00Z",
        {"request_id": "R-9", "visit_date": "2026-11-06"},
        "service",
    )
    record(
        client,
        "web.registered",
        "2026-11-05T09:00:00Z",
        {"event_id": "EV-1", "event_name": "Open day"},
        "web",
    )
    record(client, "registration.confirmed", "2026-11-05T10:00:00Z", {"event_id": "EV-1"}, "web")
    return record(
        client,
        "service.resolved",
        "2026-11-07T09:00:00Z",
        {"request_id": "R-9", "resolution": "Seal replaced"},
        "service",
    )


def test_feed_is_valid_atom_with_the_customer_visible_updates_newest_first(
    client: TestClient,
) -> None:
    last = history(client)
    answer = client.get(
        f"/v1/customers/{last['customer_id']}/feed.atom",
        params={"min_position": last["position"]},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(answer.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.id == f"urn:uuid:{last['customer_id']}"
    assert feed.feed.links[0].href.endswith(f"/v1/customers/{last['customer_id']}/feed.atom")
    assert [entry.title for entry in feed.entries] == [
        "Service request R-9 is resolved",
        "Your registration is confirmed",
        "A visit is booked for 2026-11-06",
        "We opened service request R-9",
        "Your order A-17 is shipped",
        "We received your order A-17",
    ]
    assert feed.entries[0].id == f"urn:uuid:{last['touchpoint_id']}"
    assert feed.entries[0].summary == "Seal replaced"
    assert feed.entries[0].published.startswith("2026-11-07T09:00:00")


def test_feed_leaves_out_conversations_and_internal_notes(client: TestClient) -> None:
    last = history(client)
    body = client.get(
        f"/v1/customers/{last['customer_id']}/feed.atom", params={"min_position": last["position"]}
    ).text
    assert "Private question" not in body
    assert "difficult customer" not in body


def test_feed_of_an_unknown_customer_is_a_404_problem(client: TestClient) -> None:
    answer = client.get("/v1/customers/7d3c2a34-5b2a-4a47-9a0e-7c7a8e111111/feed.atom")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


def test_feed_of_a_customer_with_no_updates_yet_is_valid_and_empty(client: TestClient) -> None:
    first = record(client, "email.received", "2026-11-01T10:00:00Z", {"subject": "Hello"}, "email")
    answer = client.get(
        f"/v1/customers/{first['customer_id']}/feed.atom",
        params={"min_position": first["position"]},
    )
    feed = feedparser.parse(answer.content)
    assert not feed.bozo
    assert feed.entries == []
