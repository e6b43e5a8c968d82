"""Races over HTTP between two `hub serve` processes on one PostgreSQL database: 50
contradicting quotes at one instant make one acceptance and 49 conflicts; 50 first contacts
for one new email make one customer. The store decides, not a lock in either process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hub.app import Hub
from hub.settings import Settings
from tests.factories import money, raw_touchpoint
from tests.integration.nats_helpers import process_env
from tests.integration.private_servers import ServeProcess

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("store_env", ["postgres"], indirect=True),
]
RACERS = 50


@pytest.fixture
def servers(store_env: dict[str, str], tmp_path) -> Iterator[list[str]]:
    """Two `hub serve` processes on the test's database; their base URLs."""
    env = process_env(store_env, Settings())
    running = [ServeProcess(env, tmp_path / f"serve-{i}.log") for i in range(2)]
    for server in running:
        server.wait_ready()
    yield [server.url for server in running]
    for server in running:
        server.process.terminate()


def race(urls: list[str], raws: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST every envelope at one instant, alternating between the servers."""
    clients = [httpx.Client(base_url=urls[i % len(urls)], timeout=60) for i in range(len(raws))]
    for client in clients:  # connect first, so the race is between requests
        client.get("/healthz").raise_for_status()
    barrier = threading.Barrier(len(raws))
    answers: list[httpx.Response | None] = [None] * len(raws)

    def post(index: int) -> None:
        barrier.wait()
        answers[index] = clients[index].post("/v1/touchpoints", json=raws[index])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(raws))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    for client in clients:
        client.close()
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def test_fifty_contradicting_quotes_over_two_servers_make_one_acceptance(
    servers: list[str], hub: Hub
) -> None:
    email = "quoted.race@example.com"
    first = httpx.post(
        f"{servers[0]}/v1/touchpoints", json=raw_touchpoint(customer={"email": email})
    )
    customer_id = first.json()["customer_id"]
    quotes = [
        raw_touchpoint(
            type="quote.given",
            source={"channel": "sales", "id": f"race-quote-{i}"},
            customer={"email": email},
            data={
                "sku": "SKU-9",
                "price": money(f"{100 + i}.00"),
                "valid_until": "2026-12-31T00:00:00Z",
            },
        )
        for i in range(RACERS)
    ]
    answers = race(servers, quotes)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * (RACERS - 1)
    (winner,) = [a.json() for a in answers if a.status_code == 201]
    for loser in (a for a in answers if a.status_code == 409):
        assert loser.headers["content-type"] == "application/problem+json"
        (conflict,) = loser.json()["conflicts"]
        assert conflict["rule"] == "claim-vs-claim"
        assert conflict["earlier"]["touchpoint_id"] == winner["touchpoint_id"]
    in_store = [e for e in hub.history(customer_id) if e.get("type") == "quote.given"]
    assert len(in_store) == 1


def test_fifty_first_contacts_over_two_servers_for_one_new_email_make_one_customer(
    servers: list[str], hub: Hub
) -> None:
    contacts = [
        raw_touchpoint(
            type="email.received",
            source={"channel": "email", "id": f"<race-{i}@example.net>"},
            customer={"email": "Brand.New@Example.com"},
            data={"subject": "Hello"},
        )
        for i in range(RACERS)
    ]
    answers = race(servers, contacts)
    assert [a.status_code for a in answers] == [201] * RACERS
    assert len({a.json()["customer_id"] for a in answers}) == 1
    registered = [
        n
        for n in hub.recorder.select_notifications(1, 10_000)
        if n.topic.endswith("Customer.Registered")
    ]
    assert len(registered) == 1
    assert hub.find_customer("email:brand.new@example.com") == answers[0].json()["customer_id"]
