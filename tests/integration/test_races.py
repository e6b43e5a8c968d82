"""Races between two OS processes on one store: the store's uniqueness and optimistic
concurrency decide, not a lock in one process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from hub.app import Hub
from tests.factories import money, raw_touchpoint, touchpoint

PROCESSES = 2
PER_PROCESS = 10


def race(store_env: dict[str, str], raws: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Split the envelopes over two processes, all fired at one instant; every outcome."""
    start_at = time.time() + 2.0
    shares = [raws[i::PROCESSES] for i in range(PROCESSES)]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.race_worker",
                json.dumps(store_env),
                str(start_at),
                json.dumps(share),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]
    outcomes: list[dict[str, Any]] = []
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        outcomes.extend(json.loads(out))
    return outcomes


def test_twenty_first_contacts_for_one_new_email_make_one_customer(store_env, hub: Hub) -> None:
    raws = [
        raw_touchpoint(
            type="email.received",
            source={"channel": "email", "id": f"<m{i}@x>"},
            customer={"email": "New.Person@Example.com"},
            data={"subject": "Hello"},
        )
        for i in range(PROCESSES * PER_PROCESS)
    ]
    outcomes = race(store_env, raws)
    assert [o["status"] for o in outcomes] == [201] * len(raws)
    assert len({o["customer_id"] for o in outcomes}) == 1
    registered = [
        n
        for n in hub.recorder.select_notifications(1, 10_000)
        if n.topic.endswith("Customer.Registered")
    ]
    assert len(registered) == 1
    assert hub.find_customer("email:new.person@example.com") == outcomes[0]["customer_id"]


def test_twenty_contradicting_quotes_make_one_acceptance_and_nineteen_conflicts(
    store_env, hub: Hub
) -> None:
    customer_id = hub.record(touchpoint(customer={"email": "quoted@example.com"})).customer_id
    raws = [
        raw_touchpoint(
            type="quote.given",
            source={"channel": "sales", "id": f"quote-{i}"},
            customer={"email": "quoted@example.com"},
            data={
                "sku": "SKU-1",
                "price": money(f"{10 + i}.00"),
                "valid_until": "2026-12-31T00:00:00Z",
            },
        )
        for i in range(PROCESSES * PER_PROCESS)
    ]
    outcomes = race(store_env, raws)
    statuses = sorted(o["status"] for o in outcomes)
    assert statuses == [201] + [409] * (len(raws) - 1)
    (winner,) = [o for o in outcomes if o["status"] == 201]
    for loser in (o for o in outcomes if o["status"] == 409):
        (conflict,) = loser["problem"]["conflicts"]
        assert conflict["rule"] == "claim-vs-claim"
        assert conflict["earlier"]["touchpoint_id"] == winner["touchpoint_id"]
    quotes = [e for e in hub.history(customer_id) if e.get("type") == "quote.given"]
    assert len(quotes) == 1
