"""The read API over HTTP: read-your-writes, the position header, 503 when behind, the profile,
queues, conflicts, analytics and `as_of`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from hub.app import Hub
from hub.settings import Settings
from tests.factories import money, raw_touchpoint

HEADER = "X-Projection-Position"


def post(client: TestClient, **overrides: object) -> dict[str, object]:
    response = client.post("/v1/touchpoints", json=raw_touchpoint(**overrides))
    assert response.status_code in (200, 201), response.text
    body: dict[str, object] = response.json()
    return body


def test_read_with_min_position_sees_the_write_just_made(client: TestClient) -> None:
    written = post(client, type="note.added", data={"text": "just now"})
    answer = client.get(
        f"/v1/customers/{written['customer_id']}/timeline",
        params={"min_position": written["position"]},
    )
    assert answer.status_code == 200
    assert int(answer.headers[HEADER]) >= int(str(written["position"]))
    assert [e["data"]["text"] for e in answer.json()["entries"]] == ["just now"]


@pytest.fixture
def impatient(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(read_wait_s=0.2), hub=hub)) as test_client:
        yield test_client


def test_position_not_reached_in_time_is_503_with_retry_after(impatient: TestClient) -> None:
    written = post(impatient)
    answer = impatient.get(
        f"/v1/customers/{written['customer_id']}", params={"min_position": 10_000_000}
    )
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["Retry-After"]
    assert answer.json()["type"] == "/problems/projections-behind"


def test_profile_keeps_the_customer_fields_and_adds_the_projection(client: TestClient) -> None:
    written = post(
        client,
        type="order.placed",
        source={"channel": "web", "id": "o-1"},
        data={"order_id": "A-1", "total": money("19.90")},
    )
    answer = client.get(
        f"/v1/customers/{written['customer_id']}", params={"min_position": written["position"]}
    )
    profile = answer.json()
    assert HEADER in answer.headers
    assert profile["customer_id"] == written["customer_id"]
    assert profile["merged_into"] is None and profile["merged_from"] == []
    assert profile["identities"] == ["email:li.wei@example.com"]
    assert profile["touchpoints"] == 1
    assert profile["orders"]["count"] == 1


def test_unknown_customer_is_404(client: TestClient) -> None:
    answer = client.get("/v1/customers/0b7f5f2e-7a1c-4f4b-9b7e-2f1d0c9e8a11/claims")
    assert answer.status_code == 404


def test_queue_lists_the_open_item_of_a_new_request(client: TestClient) -> None:
    written = post(client, type="service.opened", data={"request_id": "R-1", "kind": "repair"})
    answer = client.get(
        "/v1/open-items", params={"kind": "repair", "min_position": written["position"]}
    )
    assert [i["item_id"] for i in answer.json()["open_items"]] == ["service:R-1"]
    assert client.get("/v1/open-items", params={"kind": "reply"}).json()["open_items"] == []


def test_rejected_claim_shows_in_conflicts_by_customer_and_rule(client: TestClient) -> None:
    placed = post(
        client,
        type="order.placed",
        source={"channel": "web", "id": "o-1"},
        data={"order_id": "A-1", "total": money("19.90")},
    )
    refused = client.post(
        "/v1/touchpoints",
        json=raw_touchpoint(claims=[{"subject": "order:A-1:status", "value": "shipped"}]),
    )
    assert refused.status_code == 409
    position = client.get("/healthz").json()["position"]
    answer = client.get(
        "/v1/conflicts",
        params={
            "customer_id": placed["customer_id"],
            "rule": "claim-vs-fact",
            "min_position": position,
        },
    )
    (conflict,) = answer.json()["conflicts"]
    assert (conflict["outcome"], conflict["subject"]) == ("rejected", "order:A-1:status")


def test_analytics_counts_touchpoints_by_channel(client: TestClient) -> None:
    post(client)
    written = post(
        client,
        source={"channel": "email", "id": "<m1>"},
        type="email.received",
        data={"subject": "hi"},
    )
    answer = client.get(
        "/v1/analytics/touchpoints",
        params={"group_by": "channel", "min_position": written["position"]},
    )
    assert answer.json()["rows"] == [
        {"channel": "email", "count": 1},
        {"channel": "phone", "count": 1},
    ]
    levels = client.get("/v1/analytics/service-levels", params={"by": "agent"})
    assert levels.status_code == 200


def test_as_of_before_the_customer_existed_is_404(client: TestClient) -> None:
    written = post(client)
    answer = client.get(
        f"/v1/customers/{written['customer_id']}/timeline",
        params={"as_of": "2000-01-01T00:00:00Z"},
    )
    assert answer.status_code == 404
    now = client.get(
        f"/v1/customers/{written['customer_id']}/open-items",
        params={"as_of": "2999-01-01T00:00:00Z"},
    )
    assert now.status_code == 200 and HEADER in now.headers


def test_projection_status_shows_every_projection(client: TestClient) -> None:
    names = {p["name"] for p in client.get("/v1/projections").json()["projections"]}
    assert names == {"timeline", "profile", "open_items", "claims", "conflicts", "analytics"}
