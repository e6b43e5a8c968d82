"""Limits on one touchpoint (claims, nesting and size of `data`, string lengths): each a 422
problem naming the field, configurable, and nothing appended."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from hub.app import Hub
from hub.settings import Settings
from tests.factories import raw_touchpoint

PROBLEM = "application/problem+json"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"deeper": value}
    return value


def claims(n: int) -> list[dict[str, Any]]:
    return [{"subject": f"note:{i}", "value": i} for i in range(n)]


def head(client: TestClient) -> int:
    return int(client.get("/healthz").json()["position"])


def refused_field(client: TestClient, raw: dict[str, Any]) -> str:
    before = head(client)
    response = client.post("/v1/touchpoints", json=raw)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert head(client) == before
    return str(response.json()["errors"][0]["field"])


def test_too_many_claims_is_422_naming_claims(client: TestClient) -> None:
    assert refused_field(client, raw_touchpoint(claims=claims(51))) == "claims"


def test_data_nested_too_deep_is_422_naming_the_place(client: TestClient) -> None:
    field = refused_field(client, raw_touchpoint(data={"summary": "x", "extra": nested(8)}))
    assert field.startswith("data.extra.deeper")


def test_too_long_string_in_data_is_422_naming_it(client: TestClient) -> None:
    raw = raw_touchpoint(data={"summary": "x", "form": {"note": "y" * 20_001}})
    assert refused_field(client, raw) == "data.form.note"


def test_too_long_claim_value_is_422_naming_it(client: TestClient) -> None:
    raw = raw_touchpoint(claims=[{"subject": "note:1", "value": "z" * 20_001}])
    assert refused_field(client, raw) == "claims.0.value"


def test_data_over_its_size_is_422_naming_data(client: TestClient) -> None:
    big = {f"k{i}": "v" * 10_000 for i in range(30)}  # ~300 KB, each string within limits
    assert refused_field(client, raw_touchpoint(data={"summary": "x", **big})) == "data"


def test_within_the_limits_is_recorded(client: TestClient) -> None:
    raw = raw_touchpoint(claims=claims(50), data={"summary": "y" * 20_000, "extra": nested(7)})
    assert client.post("/v1/touchpoints", json=raw).status_code == 201


def test_limits_come_from_the_settings(make_hub: Callable[..., Hub]) -> None:
    settings = Settings(max_claims=2, max_data_depth=2, max_string_chars=30)
    hub = make_hub(limits=settings.limits())
    with TestClient(create_app(settings, hub=hub)) as client:
        assert refused_field(client, raw_touchpoint(claims=claims(3))) == "claims"
        assert refused_field(client, raw_touchpoint(data={"summary": "x" * 31})) == "data.summary"
        assert refused_field(client, raw_touchpoint(data={"summary": "x", "a": nested(2)}))
        assert (
            client.post("/v1/touchpoints", json=raw_touchpoint(claims=claims(2))).status_code == 201
        )


def test_batch_item_over_a_limit_is_its_own_422(client: TestClient) -> None:
    items = [raw_touchpoint(), raw_touchpoint(claims=claims(51))]
    body = client.post("/v1/touchpoints/batch", json=items).json()
    assert [r["status"] for r in body["results"]] == [201, 422]
    assert body["results"][1]["problem"]["errors"][0]["field"] == "[1].claims"


@pytest.mark.parametrize("name, value", [("HUB_MAX_CLAIMS", "7"), ("HUB_MAX_DATA_DEPTH", "3")])
def test_limits_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert str(getattr(Settings(), name.removeprefix("HUB_").lower())) == value


BEYOND_64_BITS = b'"summary": "x", "n": 18446744073709551616'
NOT_FINITE = b'"summary": "x", "n": NaN'


def body_with(data: bytes, source_id: str) -> bytes:
    """An envelope written by hand: numbers the JSON encoders here would not write."""
    raw = raw_touchpoint(source={"channel": "phone", "id": source_id}, data={})
    return orjson.dumps(raw).replace(b'"data":{}', b'"data":{' + data + b"}")


@pytest.mark.parametrize("content_type", ["application/json", "application/merge+json"])
def test_an_integer_beyond_64_bits_is_422_on_either_path(
    client: TestClient, content_type: str
) -> None:
    """orjson (the fast path's decoder) reads 2**64 as a float: it was stored rounded with a
    201 on the fast path (`application/json`) while the route (FastAPI's own decoding, any
    other JSON type) refused it. Both refuse it now, naming it, and append nothing."""
    before = head(client)
    for attempt in range(3):  # the fast path once the hub knows it runs open
        response = client.post(
            "/v1/touchpoints",
            content=body_with(BEYOND_64_BITS, f"big-{content_type}-{attempt}"),
            headers={"content-type": content_type},
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0] == {
            "field": "data.n",
            "message": "a number beyond 64 bits",
        }
    assert head(client) == before


def test_nan_is_422_on_the_route_that_reads_it(client: TestClient) -> None:
    """NaN is not JSON, but the standard library (the route's decoder) reads it; stored, orjson
    wrote it as null. It is refused, naming the place."""
    before = head(client)
    response = client.post(
        "/v1/touchpoints",
        content=body_with(NOT_FINITE, "nan-1"),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0] == {"field": "data.n", "message": "not a finite number"}
    assert head(client) == before


@pytest.mark.parametrize("ndjson", [False, True], ids=["json-array", "ndjson"])
def test_a_batch_item_beyond_64_bits_is_its_own_422(client: TestClient, ndjson: bool) -> None:
    good = orjson.dumps(raw_touchpoint())
    bad = body_with(BEYOND_64_BITS, "big-in-batch" + str(ndjson))
    body = good + b"\n" + bad if ndjson else b"[" + good + b"," + bad + b"]"
    kind = "application/x-ndjson" if ndjson else "application/json"
    response = client.post("/v1/touchpoints/batch", content=body, headers={"content-type": kind})
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first["status"] == 201
    assert second["status"] == 422
    assert second["problem"]["errors"][0]["message"] == "a number beyond 64 bits"
