"""Limits on one touchpoint (claims, nesting and size of `data`, string lengths): each a 422
problem naming the field, configurable, and nothing appended."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
