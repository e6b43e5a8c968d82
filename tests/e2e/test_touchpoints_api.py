"""The write API over HTTP: status codes, problem documents, limits; bad input changes nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from hub.app import Hub
from tests.factories import money, raw_touchpoint

PROBLEM = "application/problem+json"


def order_placed(**overrides: Any) -> dict[str, Any]:
    doc = {
        "type": "order.placed",
        "source": {"channel": "web", "id": "order-A-17"},
        "data": {"order_id": "A-17", "total": money("19.90")},
    }
    return raw_touchpoint(**{**doc, **overrides})


def test_new_touchpoint_is_201_with_its_position(client: TestClient) -> None:
    response = client.post("/v1/touchpoints", json=raw_touchpoint())
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {"touchpoint_id", "customer_id", "position", "duplicate"}
    assert body["duplicate"] is False


def test_repeated_source_key_is_200_with_the_first_result(client: TestClient) -> None:
    raw = raw_touchpoint()
    first = client.post("/v1/touchpoints", json=raw).json()
    again = client.post("/v1/touchpoints", json=raw)
    assert again.status_code == 200
    assert again.json() == {**first, "duplicate": True}


def test_conflict_is_409_listing_every_conflict(client: TestClient) -> None:
    client.post("/v1/touchpoints", json=order_placed())
    response = client.post(
        "/v1/touchpoints",
        json=raw_touchpoint(
            claims=[
                {"subject": "order:A-17:status", "value": "shipped"},
                {"subject": "order:Z-1:status", "value": "shipped"},
            ]
        ),
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "/problems/conflict"
    assert [c["subject"] for c in problem["conflicts"]] == ["order:A-17:status", "order:Z-1:status"]
    earlier = problem["conflicts"][0]["earlier"]
    assert (earlier["channel"], earlier["value"]) == ("web", "placed")
    assert problem["conflicts"][0]["attempted"] == "shipped"


def test_ambiguous_identity_is_409_naming_the_customers(client: TestClient) -> None:
    a = client.post("/v1/touchpoints", json=raw_touchpoint(customer={"email": "a@x.com"})).json()
    b = client.post("/v1/touchpoints", json=raw_touchpoint(customer={"phone": "+4930123456"}))
    response = client.post(
        "/v1/touchpoints",
        json=raw_touchpoint(customer={"email": "a@x.com", "phone": "+4930123456"}),
    )
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/ambiguous-identity"
    named = {c["customer_id"] for c in response.json()["customers"]}
    assert named == {a["customer_id"], b.json()["customer_id"]}


BAD_INPUTS = [
    ("unknown type", raw_touchpoint(type="order.teleported"), "type"),
    (
        "missing customer",
        {k: v for k, v in raw_touchpoint().items() if k != "customer"},
        "customer",
    ),
    ("empty customer", raw_touchpoint(customer={}), "customer"),
    ("invalid email", raw_touchpoint(customer={"email": "li.wei@"}), "customer.email"),
    ("invalid phone", raw_touchpoint(customer={"phone": "12"}), "customer.phone"),
    ("bad timestamp", raw_touchpoint(occurred_at="yesterday"), "occurred_at"),
    ("naive timestamp", raw_touchpoint(occurred_at="2026-11-03T09:30:00"), "occurred_at"),
    ("future timestamp", raw_touchpoint(occurred_at="2099-01-01T00:00:00Z"), "occurred_at"),
    (
        "non-decimal amount",
        order_placed(data={"order_id": "A", "total": money("19,90")}),
        "data.total.amount",
    ),
    (
        "float amount",
        order_placed(data={"order_id": "A", "total": {"amount": 19.9, "currency": "EUR"}}),
        "data.total.amount",
    ),
    ("unknown channel", raw_touchpoint(source={"channel": "fax", "id": "1"}), "source.channel"),
    (
        "bad claim subject",
        raw_touchpoint(claims=[{"subject": "no subject", "value": 1}]),
        "claims.0.subject",
    ),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_422_naming_the_field_and_appends_nothing(
    client: TestClient, hub: Hub, case: str, body: dict[str, Any], field: str
) -> None:
    client.post("/v1/touchpoints", json=raw_touchpoint())
    before = hub.recorder.max_notification_id()
    response = client.post("/v1/touchpoints", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert field in [e["field"] for e in response.json()["errors"]]
    assert hub.recorder.max_notification_id() == before


def test_malformed_json_is_422_and_appends_nothing(client: TestClient, hub: Hub) -> None:
    response = client.post(
        "/v1/touchpoints", content=b'{"source": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"
    assert hub.recorder.max_notification_id() is None or hub.recorder.max_notification_id() == 0


def test_body_over_one_mebibyte_is_413(client: TestClient, hub: Hub) -> None:
    body = raw_touchpoint(data={"summary": "x" * (1024 * 1024)})
    response = client.post("/v1/touchpoints", json=body)
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert not hub.recorder.max_notification_id()


def test_batch_answers_each_item_in_order(client: TestClient) -> None:
    items = [
        order_placed(),
        raw_touchpoint(customer={"email": "x@"}),
        raw_touchpoint(claims=[{"subject": "order:A-17:status", "value": "placed"}]),
        order_placed(),
    ]
    response = client.post("/v1/touchpoints/batch", json=items)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 422, 201, 200]
    assert results[1]["problem"]["errors"][0]["field"] == "[1].customer.email"


def test_ndjson_batch_reports_a_broken_line_and_imports_the_rest(client: TestClient) -> None:
    lines = [orjson.dumps(raw_touchpoint()), b"{not json", orjson.dumps(raw_touchpoint())]
    response = client.post(
        "/v1/touchpoints/batch",
        content=b"\n".join(lines),
        headers={"content-type": "application/x-ndjson"},
    )
    assert [r["status"] for r in response.json()["results"]] == [201, 422, 201]


def test_batch_over_a_thousand_items_is_413_and_appends_nothing(
    client: TestClient, hub: Hub
) -> None:
    small = {
        "source": {"channel": "web", "id": "1"},
        "type": "note.added",
        "occurred_at": "2026-11-03T09:30:00Z",
        "customer": {"email": "a@b.co"},
        "data": {"text": "n"},
    }
    response = client.post("/v1/touchpoints/batch", json=[small] * 1001)
    assert response.status_code == 413
    assert not hub.recorder.max_notification_id()


def test_batch_in_record_mode_appends_contradictions(client: TestClient) -> None:
    items = [
        order_placed(),
        raw_touchpoint(claims=[{"subject": "order:A-17:status", "value": "shipped"}]),
    ]
    response = client.post("/v1/touchpoints/batch?mode=record", json=items)
    second = response.json()["results"][1]
    assert second["status"] == 201
    assert second["detected_conflicts"][0]["rule"] == "claim-vs-fact"


def test_check_is_a_dry_run(client: TestClient, hub: Hub) -> None:
    client.post("/v1/touchpoints", json=order_placed())
    before = hub.recorder.max_notification_id()
    draft = raw_touchpoint(claims=[{"subject": "order:A-17:status", "value": "shipped"}])
    response = client.post("/v1/touchpoints/check", json=draft)
    assert response.status_code == 200
    assert response.json()["ok"] is False
    assert response.json()["conflicts"][0]["rule"] == "claim-vs-fact"
    assert hub.recorder.max_notification_id() == before


def test_customer_lookup_by_each_identity(client: TestClient) -> None:
    created = client.post(
        "/v1/touchpoints",
        json=raw_touchpoint(
            customer={
                "email": "li.wei@example.com",
                "phone": "+86 138 0013 8000",
                "account": "shop:1234",
            }
        ),
    ).json()
    for query in ("email=LI.WEI@example.com", "phone=%2B8613800138000", "account=SHOP:1234"):
        response = client.get(f"/v1/customers?{query}")
        assert response.json()["customer_id"] == created["customer_id"], query
    assert client.get("/v1/customers?email=nobody@example.com").status_code == 404
    assert client.get("/v1/customers?email=not-an-email").status_code == 422


def test_merge_over_http_routes_later_touchpoints(client: TestClient) -> None:
    a = client.post("/v1/touchpoints", json=raw_touchpoint(customer={"email": "a@x.com"})).json()
    b = client.post("/v1/touchpoints", json=raw_touchpoint(customer={"email": "b@x.com"})).json()
    merged = client.post(f"/v1/customers/{a['customer_id']}/merge", json={"from": b["customer_id"]})
    assert merged.status_code == 200
    later = client.post("/v1/touchpoints", json=raw_touchpoint(customer={"email": "b@x.com"}))
    assert later.json()["customer_id"] == a["customer_id"]
    again = client.post(f"/v1/customers/{a['customer_id']}/merge", json={"from": b["customer_id"]})
    assert again.status_code == 409


def test_history_gives_positions_versions_hashes_and_source_keys(client: TestClient) -> None:
    created = client.post(
        "/v1/touchpoints", json=raw_touchpoint(source={"channel": "phone", "id": "call-88121"})
    ).json()
    events = client.get(f"/v1/customers/{created['customer_id']}/history").json()["events"]
    touch = events[-1]
    assert touch["position"] == created["position"]
    assert touch["source"] == {"channel": "phone", "id": "call-88121"}
    assert touch["version"] == 2 and touch["recorded_at"] and touch["hash"]
    assert touch["actor"]["id"] == "agent-17"
    past = client.get(
        f"/v1/customers/{created['customer_id']}/history", params={"as_of": "2000-01-01T00:00:00Z"}
    ).json()["events"]
    assert past == []


def test_unknown_customer_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/v1/customers/0b7f5f2e-7a1c-4f4b-9b7e-2f1d0c9e8a11/history")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
