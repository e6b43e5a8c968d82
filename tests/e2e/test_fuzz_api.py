"""Fuzzing the HTTP API with schemathesis, from the OpenAPI schema the app publishes, against
a real `hub serve` on PostgreSQL: no 5xx, every 4xx a problem document, and a rejected
request leaves the store as it was (a blocked attempt is logged as a `RejectedAttempt` or a
merge suggestion, by design; no touchpoint or customer event is ever added)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from api.app import create_app
from hub.app import Hub
from hub.settings import Settings
from tests.conftest import pg_url
from tests.factories import raw_touchpoint
from tests.integration.nats_helpers import process_env
from tests.integration.private_servers import ServeProcess

pytestmark = pytest.mark.postgres
EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "10"))  # per operation; more for a deep run
# What a refused request may leave in the log: the audit trail of what was blocked.
AUDIT_TOPICS = ("RejectedAttempt", "MergeSuggestion")


@pytest.fixture(scope="module")
def fuzzed(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A `hub serve` on a schema of its own, and a Hub in this process to read the store."""
    schema = f"fuzz_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url(pg_database), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    store_env = {
        **Settings(database_url=pg_url(pg_database), pool_size=2).eventsourcing_env(),
        "POSTGRES_SCHEMA": schema,
    }
    hub = Hub(store_env)
    server = ServeProcess(
        process_env(store_env, Settings(), HUB_READ_WAIT_S="0.2"),
        tmp_path_factory.mktemp("fuzz") / "serve.log",
    )
    server.wait_ready()
    yield {"hub": hub, "server": server}
    server.process.terminate()
    hub.close()
    with psycopg.connect(pg_url(pg_database), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# Raw bodies: an email as the mail server got it, NDJSON batches as text.
schemathesis.serializer.alias("message/rfc822", "application/octet-stream")
schemathesis.serializer.alias("application/x-ndjson", "text/plain")
# The schema the app publishes at /openapi.json (building the app connects to nothing).
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


def _added_since(hub: Hub, position: int) -> list[str]:
    """Topics of the events recorded after `position`."""
    return [n.topic for n in hub.recorder.select_notifications(position + 1, 1000)]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_fuzzed_requests_get_no_5xx_and_every_refusal_is_a_problem_changing_nothing(
    case: Any, fuzzed: dict[str, Any]
) -> None:
    hub: Hub = fuzzed["hub"]
    before = hub.recorder.max_notification_id() or 0
    response = case.call(base_url=fuzzed["server"].url, timeout=30)
    status = response.status_code
    where = f"{case.method} {case.formatted_path}"
    if status == 503 and response.json().get("type") == "/problems/projections-behind":
        # A min_position past the log's head: the documented answer is to come back later.
        assert response.headers.get("retry-after"), where
    else:
        assert status < 500, f"{where}: {status} {response.text[:500]}"
    if status >= 400:  # 4xx, and the documented 503 above
        (content_type,) = response.headers.get("content-type", [""])
        assert content_type.startswith("application/problem+json"), (
            where,
            status,
            response.text[:300],
        )
        problem = response.json()
        assert {"type", "title", "status"} <= problem.keys(), (where, problem)
        assert problem["status"] == status
        added = _added_since(hub, before)
        assert all(topic.endswith(AUDIT_TOPICS) for topic in added), (where, status, added)


# What the fuzzer found, pinned (each answered 500).


def test_time_before_year_1000_is_accepted_as_a_filter(client: Any, hub: Hub) -> None:
    quote = {
        "type": "quote.given",
        "source": {"channel": "sales", "id": "q-1"},
        "data": {"sku": "S", "price": {"amount": "1.00", "currency": "EUR"}},
    }
    client.post("/v1/touchpoints", json=raw_touchpoint(**quote))
    again = {**quote, "source": {"channel": "sales", "id": "q-2"}}
    again["data"] = {**quote["data"], "price": {"amount": "2.00", "currency": "EUR"}}
    assert client.post("/v1/touchpoints", json=raw_touchpoint(**again)).status_code == 409
    answer = client.get(
        "/v1/conflicts",
        params={
            "since": "0999-01-01T00:00:00Z",
            "min_position": hub.recorder.max_notification_id(),
        },
    )
    assert answer.status_code == 200
    assert [c["rule"] for c in answer.json()["conflicts"]] == ["claim-vs-claim"]


def test_min_position_past_64_bits_is_a_422_naming_the_field(client: Any) -> None:
    answer = client.get(
        "/v1/customers/0b7f5f2e-7a1c-4f4b-9b7e-2f1d0c9e8a11", params={"min_position": 2**64}
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["min_position"]


def test_page_marker_past_64_bits_is_a_422_naming_the_field(client: Any) -> None:
    answer = client.get("/v1/conflicts", params={"before": 2**64})
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["before"]
