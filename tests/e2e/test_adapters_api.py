"""Webhook adapters over HTTP: channel payloads recorded through the batch path, 422s that name
the field with nothing appended, and an email reply chain that threads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from hub.app import Hub
from hub.settings import Settings
from tests.samples import COMPANY_DOMAINS, payload, raw

RFC822 = {"content-type": "message/rfc822"}


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    settings = Settings(company_domains=COMPANY_DOMAINS, run_projections=True)
    with TestClient(create_app(settings, hub=hub)) as test_client:
        yield test_client


def position(hub: Hub) -> int:
    return hub.recorder.max_notification_id() or 0


def statuses(answer: dict[str, Any]) -> list[int]:
    return [r["status"] for r in answer["results"]]


def post_email(client: TestClient, name: str) -> dict[str, Any]:
    response = client.post("/v1/adapters/email", content=raw(name), headers=RFC822)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.mark.parametrize(
    ("adapter", "sample", "types"),
    [
        ("shop", "shop_order_created.json", ["order.placed"]),
        ("shop", "shop_order_updated_shipped.json", ["order.placed", "order.status_changed"]),
        ("telephony", "telephony_inbound_callback.json", ["call.inbound"]),
        ("telephony", "telephony_outbound.json", ["call.outbound"]),
        ("servicedesk", "servicedesk_ticket_created.json", ["service.opened"]),
        ("servicedesk", "servicedesk_ticket_solved.json", ["service.opened", "service.resolved"]),
    ],
)
def test_sample_payload_is_recorded_as_its_touchpoints(
    client: TestClient, hub: Hub, adapter: str, sample: str, types: list[str]
) -> None:
    response = client.post(f"/v1/adapters/{adapter}", json=payload(sample))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert statuses(answer) == [201] * len(types)
    assert answer["accepted"] == len(types)
    customer_id = answer["results"][0]["customer_id"]
    history = client.get(f"/v1/customers/{customer_id}/history").json()
    assert [e["type"] for e in history["events"] if "type" in e][-len(types) :] == types


def test_redelivered_webhook_is_answered_as_duplicates_and_appends_nothing(
    client: TestClient, hub: Hub
) -> None:
    first = client.post("/v1/adapters/shop", json=payload("shop_order_updated_shipped.json"))
    before = position(hub)
    again = client.post("/v1/adapters/shop", json=payload("shop_order_updated_shipped.json"))
    assert statuses(again.json()) == [200, 200]
    assert [r["touchpoint_id"] for r in again.json()["results"]] == [
        r["touchpoint_id"] for r in first.json()["results"]
    ]
    assert position(hub) == before


def test_one_customer_across_shop_desk_and_phone(client: TestClient) -> None:
    order = client.post("/v1/adapters/shop", json=payload("shop_order_created.json")).json()
    ticket = client.post(
        "/v1/adapters/servicedesk", json=payload("servicedesk_ticket_created.json")
    ).json()
    call = client.post(
        "/v1/adapters/telephony", json=payload("telephony_inbound_callback.json")
    ).json()
    customers = {a["results"][0]["customer_id"] for a in (order, ticket, call)}
    assert len(customers) == 1


def test_email_reply_chain_threads_and_stays_with_one_customer(
    client: TestClient, hub: Hub
) -> None:
    first = post_email(client, "email_1_inbound_multipart.eml")["results"][0]
    reply = post_email(client, "email_2_outbound_reply.eml")["results"][0]
    followup = post_email(client, "email_3_inbound_followup.eml")["results"][0]
    assert first["customer_id"] == reply["customer_id"] == followup["customer_id"]
    events = {
        e["touchpoint_id"]: e
        for e in client.get(f"/v1/customers/{first['customer_id']}/history").json()["events"]
        if "touchpoint_id" in e
    }
    first_event = events[first["touchpoint_id"]]
    assert events[reply["touchpoint_id"]]["in_reply_to"] == [f"email:{first_event['source_id']}"]
    assert events[reply["touchpoint_id"]]["type"] == "email.sent"


def open_replies(client: TestClient, result: dict[str, Any]) -> list[str]:
    answer = client.get(
        f"/v1/customers/{result['customer_id']}/open-items",
        params={"min_position": result["position"]},
    )
    assert answer.status_code == 200, answer.text
    return [i["opened_by"] for i in answer.json()["open_items"] if i["open"]]


def test_inbound_email_awaits_a_reply_until_the_threaded_reply_answers_it(
    client: TestClient,
) -> None:
    first = post_email(client, "email_1_inbound_multipart.eml")["results"][0]
    assert open_replies(client, first) == [first["touchpoint_id"]]
    reply = post_email(client, "email_2_outbound_reply.eml")["results"][0]
    assert open_replies(client, reply) == []


@pytest.mark.parametrize(
    ("adapter", "body", "field"),
    [
        ("shop", {**payload("shop_order_created.json"), "total_price": None}, "total_price"),
        ("shop", {k: v for k, v in payload("shop_order_created.json").items() if k != "id"}, "id"),
        ("telephony", {**payload("telephony_outbound.json"), "start": "yesterday"}, "start"),
        (
            "servicedesk",
            {"event": "ticket.created", "ticket": {"id": 1, "created_at": "2026-11-03T08:45Z"}},
            "ticket.requester",
        ),
    ],
)
def test_unmappable_payload_is_422_naming_the_field_and_records_nothing(
    client: TestClient, hub: Hub, adapter: str, body: dict[str, Any], field: str
) -> None:
    before = position(hub)
    response = client.post(f"/v1/adapters/{adapter}", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]
    assert position(hub) == before


def test_email_without_message_id_is_422_naming_the_header(client: TestClient, hub: Hub) -> None:
    message = raw("email_5_autoreply.eml").replace(b"Message-ID:", b"X-Old-Id:")
    before = position(hub)
    response = client.post("/v1/adapters/email", content=message, headers=RFC822)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Message-ID"
    assert position(hub) == before


def test_number_the_hub_cannot_read_is_422_naming_the_touchpoint_field(
    client: TestClient, hub: Hub
) -> None:
    before = position(hub)
    response = client.post(
        "/v1/adapters/telephony", json={**payload("telephony_outbound.json"), "callee": "030 9018"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "touchpoints[0].customer.phone"
    assert position(hub) == before


def test_shop_order_with_bad_phone_records_neither_of_its_touchpoints(
    client: TestClient, hub: Hub
) -> None:
    body = {**payload("shop_order_updated_shipped.json"), "phone": "not a phone"}
    before = position(hub)
    response = client.post("/v1/adapters/shop", json=body)
    assert response.status_code == 422
    assert position(hub) == before


def test_every_adapter_documents_its_payload_with_an_example(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for name, schema in [
        ("shop", "OrderWebhook"),
        ("telephony", "CallRecord"),
        ("servicedesk", "TicketEvent"),
    ]:
        body = spec["paths"][f"/v1/adapters/{name}"]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"]["$ref"].endswith(schema)
        assert spec["components"]["schemas"][schema]["examples"]
    email_body = spec["paths"]["/v1/adapters/email"]["post"]["requestBody"]["content"]
    assert "Message-ID" in email_body["message/rfc822"]["example"]
