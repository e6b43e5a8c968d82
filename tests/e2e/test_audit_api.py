"""The audit endpoints over HTTP: one customer's chain check, and statements as of a moment."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hub.app import Hub
from tests.factories import money, raw_touchpoint
from tests.stores import RawStore


def quote(price: str, source: str) -> dict[str, object]:
    return raw_touchpoint(
        type="quote.given",
        source={"channel": "sales", "id": source},
        data={"sku": "SKU-9", "price": money(price)},
    )


def test_verify_of_one_customer_is_ok_then_names_an_edit(
    client: TestClient, hub: Hub, store_env: dict[str, str]
) -> None:
    customer = client.post("/v1/touchpoints", json=quote("10.00", "q-1")).json()["customer_id"]
    answer = client.get("/v1/audit/verify", params={"customer_id": customer})
    assert answer.status_code == 200
    assert answer.json()["ok"] is True and answer.json()["events"] == 2
    raw = RawStore(hub, store_env)
    try:
        state = raw.state(customer, 2).replace(b'"10.00"', b'"01.00"')
        raw.execute(
            "UPDATE {events} SET state = {p} WHERE originator_id = {p} AND originator_version = 2",
            (state, raw.stream_id(customer)),
        )
    finally:
        raw.close()
    broken = client.get("/v1/audit/verify", params={"customer_id": customer}).json()
    assert broken["ok"] is False
    assert [(b["kind"], b["version"]) for b in broken["breaks"]] == [("edited", 2)]


def test_verify_of_an_unknown_customer_is_404_naming_the_field(client: TestClient) -> None:
    answer = client.get("/v1/audit/verify", params={"customer_id": "not-a-customer"})
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_statements_list_what_was_said_with_channel_and_agent(client: TestClient) -> None:
    customer = client.post("/v1/touchpoints", json=quote("10.00", "q-1")).json()["customer_id"]
    answer = client.get(f"/v1/customers/{customer}/statements")
    assert answer.status_code == 200
    (statement,) = answer.json()["statements"]
    assert statement["subject"] == "price:SKU-9"
    assert statement["status"] == "in force"
    assert statement["channel"] == "sales" and statement["actor"]["id"] == "agent-17"
    early = client.get(
        f"/v1/customers/{customer}/statements", params={"as_of": "2000-01-01T00:00:00Z"}
    )
    assert early.json()["statements"] == []


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/customers/{c}/statements", "as_of"),
        ("/v1/customers/{c}/history", "as_of"),
        ("/v1/customers/{c}", "as_of"),
        ("/v1/customers/{c}/timeline", "as_of"),
        ("/v1/customers/{c}/timeline", "since"),
        ("/v1/customers/{c}/open-items", "as_of"),
        ("/v1/customers/{c}/claims", "as_of"),
        ("/v1/conflicts", "since"),
    ],
)
def test_a_time_without_zone_is_422_naming_it(client: TestClient, path: str, name: str) -> None:
    customer = client.post("/v1/touchpoints", json=quote("10.00", "q-1")).json()["customer_id"]
    answer = client.get(path.format(c=customer), params={name: "2026-01-01T00:00:00"})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == [name]


def test_erase_over_http_then_reads_show_erased(client: TestClient) -> None:
    first = raw_touchpoint(
        type="profile.updated",
        source={"channel": "web", "id": "p-1"},
        data={"name": "Jan Novak"},
    )
    customer = client.post("/v1/touchpoints", json=first).json()["customer_id"]
    answer = client.post(f"/v1/customers/{customer}/erase")
    assert answer.status_code == 200 and answer.json()["erased"] == [customer]
    history = client.get(f"/v1/customers/{customer}/history").json()["events"]
    assert "Jan Novak" not in str(history)
    again = client.post(
        "/v1/touchpoints",
        json=raw_touchpoint(customer={"id": customer}, source={"channel": "web", "id": "p-2"}),
    )
    assert again.status_code == 410
    assert again.json()["type"].endswith("customer-erased")
