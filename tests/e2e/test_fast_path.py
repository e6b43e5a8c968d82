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
    length: bytes | None = None,
    receive: Any = None,
    inner: Any = None,
) -> tuple[int, bytes, Inner]:
    """One request through SingleTouchpoint in front of `Inner`, on the client's app state,
    declaring `length` as its content-length (default: the body's; b"": no such header)."""
    inner = inner or Inner()
    middleware = SingleTouchpoint(inner)
    size = max(1, -(-len(body) // chunks))
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    incoming = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    sent: list[Any] = []
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": [(b"content-type", content_type)],
        "app": client.app,
    }
    length = str(len(body)).encode() if length is None else length
    if length:
        scope["headers"].append((b"content-length", length))

    async def given() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(middleware(scope, receive or given, send))
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
        {"length": b""},
        {"length": str(1024 * 1024 + 1).encode()},
    ],
    ids=[
        "get",
        "other-path",
        "unknown-mode",
        "other-query",
        "other-content-type",
        "no-declared-length",
        "declared-over-the-limit",
    ],
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


def test_a_body_not_done_in_time_is_503_and_counted(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    monkeypatch.setattr(
        client.app.state,  # type: ignore[attr-defined]
        "settings",
        settings.model_copy(update={"request_timeout_s": 0.2}),
    )

    async def never() -> dict[str, Any]:
        await asyncio.sleep(10)
        raise AssertionError("the time limit did not cut the body off")

    status, answer, inner = exchange(client, orjson.dumps(raw_touchpoint()), receive=never)
    assert (status, inner.bodies) == (503, [])
    assert orjson.loads(answer)["type"] == "/problems/request-timeout"
    assert "hub_request_timeouts_total 1.0" in client.get("/metrics").text


def test_an_unexpected_error_is_500_and_logged(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any) -> Any:
        raise RuntimeError("the committer fell over")

    monkeypatch.setattr("api.fast.record_single_answer", broken)
    status, answer, _ = exchange(client, orjson.dumps(raw_touchpoint()))
    assert (status, answer) == (500, b"Internal Server Error")
    assert "the committer fell over" in caplog.text


def test_an_error_of_the_app_behind_is_left_to_the_app(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused body goes on to the app, whose own error middleware answers and logs what
    goes wrong there: the fast path neither answers it again nor logs it twice."""

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("the route fell over")

    with pytest.raises(RuntimeError, match="the route fell over"):
        exchange(client, b"{not json", inner=broken)
    assert "POST /v1/touchpoints failed" not in caplog.text


def test_the_app_answers_the_plain_case_before_its_middleware(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the whole app: the plain case never enters FastAPI's middleware stack, and its
    answer is the route's; a refused body does, and is refused there."""
    app: Any = client.app
    entered: list[str] = []
    stack = app.middleware_stack

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        entered.append(scope["path"])
        await stack(scope, receive, send)

    monkeypatch.setattr(app, "middleware_stack", counting)
    response = client.post("/v1/touchpoints", json=raw_touchpoint())
    assert (response.status_code, entered) == (201, [])
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    refused = client.post("/v1/touchpoints", json=raw_touchpoint(occurred_at="not a time"))
    assert (refused.status_code, entered) == (422, ["/v1/touchpoints"])
    assert refused.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("times", [1, 2], ids=["over-in-the-last-chunk", "over-before-the-end"])
def test_a_body_longer_than_the_limit_is_handed_on_whatever_it_declared(
    client: TestClient, times: int
) -> None:
    """The declared length is the client's word: a body that turns out longer than the limit
    stops being read there and goes on, all of it, to the app (whose own limit answers 413);
    uvicorn's parsers stop at the declared length anyway, other servers may not."""
    limit = client.app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    body = orjson.dumps(raw_touchpoint(data={"summary": "x" * (times * limit + 10)}))
    status, _, inner = exchange(client, body, length=b"100", chunks=4)
    assert (status, inner.bodies) == (299, [body])
