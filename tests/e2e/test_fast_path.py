"""The plain `POST /v1/touchpoints` is answered without FastAPI (`api/fast.py`); everything
else reaches the route with its body as it came, so refusals stay the route's own."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.fast import SingleTouchpoint
from tests.factories import raw_touchpoint


@dataclass
class Inner:
    """The app behind the middleware: answers 299 and keeps what it was given."""

    bodies: list[bytes] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def client(client: TestClient) -> TestClient:
    """The API after one authenticated request: the hub knows it runs open (no key read)."""
    assert client.post("/v1/touchpoints/check", json=raw_touchpoint()).status_code == 200
    return client


def exchange(
    client: TestClient,
    body: bytes,
    *,
    method: str = "POST",
    path: str = "/v1/touchpoints",
    query: bytes = b"",
    content_type: bytes = b"application/json",
    chunks: int = 1,
) -> tuple[int, bytes, Inner]:
    """One request through SingleTouchpoint in front of `Inner`, on the client's app state."""
    inner = Inner()
    middleware = SingleTouchpoint(inner)
    size = max(1, -(-len(body) // chunks))
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    incoming = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": [(b"content-type", content_type)],
        "app": client.app,
    }

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, answer, inner


def test_plain_touchpoint_is_recorded_without_reaching_the_route(client: TestClient) -> None:
    source = {"channel": "phone", "id": "call-fast-1"}
    status, answer, inner = exchange(client, orjson.dumps(raw_touchpoint(source=source)), chunks=3)
    assert (status, inner.bodies) == (201, [])
    created = orjson.loads(answer)
    events = client.get(f"/v1/customers/{created['customer_id']}/history").json()["events"]
    assert (events[-1]["source"], events[-1]["position"]) == (source, created["position"])


def test_repeated_source_key_through_the_fast_path_is_200_with_the_first_result(
    client: TestClient,
) -> None:
    body = orjson.dumps(raw_touchpoint())
    first = orjson.loads(exchange(client, body)[1])
    status, answer, _ = exchange(client, body)
    assert (status, orjson.loads(answer)) == (200, {**first, "duplicate": True})


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", orjson.dumps(raw_touchpoint(occurred_at="not a time"))],
    ids=["not-json", "not-an-object", "invalid-envelope"],
)
def test_refused_body_reaches_the_route_exactly_as_it_came(client: TestClient, body: bytes) -> None:
    status, _, inner = exchange(client, body, chunks=2)
    assert (status, inner.bodies) == (299, [body])


@pytest.mark.parametrize(
    "request_",
    [
        {"method": "GET"},
        {"path": "/v1/touchpoints/batch"},
        {"query": b"mode=bogus"},
        {"query": b"mode=live&min_position=3"},
        {"content_type": b"application/x-ndjson"},
    ],
    ids=["get", "other-path", "unknown-mode", "other-query", "other-content-type"],
)
def test_other_requests_reach_the_route(client: TestClient, request_: dict[str, Any]) -> None:
    body = orjson.dumps(raw_touchpoint())
    status, _, inner = exchange(client, body, **request_)
    assert (status, inner.bodies) == (299, [body])


def cheaper_quote_after_a_first(client: TestClient) -> bytes:
    """Records a quote through the fast path; the body of a second one at another price."""
    quote = {"type": "quote.given", "source": {"channel": "sales", "id": "q1"}}
    data = {"sku": "X", "price": {"amount": "10.00", "currency": "EUR"}}
    exchange(client, orjson.dumps(raw_touchpoint(**quote, data=data)))
    other = {**quote, "source": {"channel": "sales", "id": "q2"}}
    cheaper = {**data, "price": {"amount": "8.00", "currency": "EUR"}}
    return orjson.dumps(raw_touchpoint(**other, data=cheaper))


def test_record_mode_through_the_fast_path_keeps_the_conflict(client: TestClient) -> None:
    status, answer, inner = exchange(
        client, cheaper_quote_after_a_first(client), query=b"mode=record"
    )
    assert (status, inner.bodies) == (201, [])
    assert [c["rule"] for c in orjson.loads(answer)["detected_conflicts"]] == ["claim-vs-claim"]


def test_conflict_through_the_fast_path_is_409_and_counted(client: TestClient) -> None:
    status, answer, _ = exchange(client, cheaper_quote_after_a_first(client))
    assert status == 409
    assert orjson.loads(answer)["type"] == "/problems/conflict"
    counted = 'hub_touchpoints_total{channel="sales",outcome="rejected",reason="claim-vs-claim"}'
    assert f"{counted} 1.0" in client.get("/metrics").text
