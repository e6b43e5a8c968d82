"""`GET /metrics`: touchpoints by outcome, channel and reason, append latency, projection lag,
request timeouts; the counters move with what the hub does."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import raw_touchpoint


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def touchpoints(samples: dict, outcome: str, channel: str, reason: str = "") -> float:  # type: ignore[type-arg]
    labels = (("channel", channel), ("outcome", outcome), ("reason", reason))
    return samples.get(("hub_touchpoints_total", labels), 0.0)


def claim(value: str) -> list[dict[str, str]]:
    return [{"subject": "delivery:A-9:date", "value": value}]


def test_accepted_duplicate_and_rejected_touchpoints_are_counted_by_channel_and_rule(
    client: TestClient,
) -> None:
    first = raw_touchpoint(claims=claim("2026-11-05"))
    assert client.post("/v1/touchpoints", json=first).status_code == 201
    assert client.post("/v1/touchpoints", json=first).status_code == 200
    assert (
        client.post("/v1/touchpoints", json=raw_touchpoint(claims=claim("2026-11-09"))).status_code
        == 409
    )
    batch = [
        raw_touchpoint(source={"channel": "web", "id": "form-1"}),
        {"source": {"channel": "web"}},
    ]
    assert client.post("/v1/touchpoints/batch", json=batch).status_code == 200
    samples = scrape(client)
    assert touchpoints(samples, "accepted", "phone") == 1
    assert touchpoints(samples, "duplicate", "phone") == 1
    assert touchpoints(samples, "rejected", "phone", "claim-vs-claim") == 1
    assert touchpoints(samples, "accepted", "web") == 1
    assert touchpoints(samples, "rejected", "web", "invalid-input") == 1


def test_append_latency_is_observed_per_path(client: TestClient) -> None:
    client.post("/v1/touchpoints", json=raw_touchpoint())
    client.post("/v1/touchpoints/batch", json=[raw_touchpoint(), raw_touchpoint()])
    samples = scrape(client)
    assert samples[("hub_append_seconds_count", (("path", "single"),))] == 1
    assert samples[("hub_append_seconds_count", (("path", "batch"),))] == 1
    assert samples[("hub_append_seconds_sum", (("path", "single"),))] > 0


def test_projection_lag_is_reported_per_projection(client: TestClient) -> None:
    position = client.post("/v1/touchpoints", json=raw_touchpoint()).json()["position"]
    client.get(f"/v1/projections?min_position={position}")
    client.get(f"/v1/customers/x/timeline?min_position={position}")
    samples = scrape(client)
    names = {
        dict(labels)["name"] for (name, labels) in samples if name == "hub_projection_lag_events"
    }
    assert names == {"timeline", "profile", "open_items", "claims", "conflicts", "analytics"}
    assert samples[("hub_projection_position", (("name", "timeline"),))] >= position


def test_caches_report_what_they_hold_against_their_bounds(client: TestClient) -> None:
    client.post("/v1/touchpoints", json=raw_touchpoint())
    position = client.post("/v1/touchpoints", json=raw_touchpoint()).json()["position"]
    client.get(f"/v1/projections?min_position={position}")
    samples = scrape(client)

    def cache(name: str, label: str) -> float:
        return samples[(f"hub_cache_{name}", (("cache", label),))]

    assert cache("entries", "aggregates") == 1  # both touchpoints were one customer's
    assert cache("weight", "aggregates") >= 2  # two facts, at least
    assert cache("weight_limit", "aggregates") == 50_000
    assert cache("hits", "aggregates") >= 1  # the second touchpoint found the first's customer
    assert cache("entries", "view_profile") == 1
    assert cache("weight_limit", "view_profile") == 50_000
