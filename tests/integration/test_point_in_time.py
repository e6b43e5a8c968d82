"""`as_of` on both stores: for a customer with corrections and merges, every per-customer read as
of a moment returns exactly what the live read returned at that moment, and the statements
report lists exactly what had been told by then."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hub.app import Hub
from projections import reads
from projections.base import norm_time
from projections.runner import Projections
from projections.store import Tx
from tests.factories import touchpoint

Read = Callable[[Tx], dict[str, Any]]


def every_read(customer: str, moment: datetime) -> dict[str, Read]:
    now = norm_time(moment) or ""
    return {
        "profile": lambda tx: reads.read_profile(tx, customer),
        "timeline": lambda tx: reads.read_timeline(tx, customer),
        "open_items": lambda tx: reads.read_open_items(tx, customer, now, include_closed=True),
        "claims": lambda tx: reads.read_claims(tx, customer, now),
    }


def moment(hub: Hub, views: Projections, customers: list[str], seen: list[Any]) -> None:
    """Catch the views up, note the time and what every read of each customer says now."""
    views.catch_up()
    at = datetime.now(UTC)
    live = {
        (customer, name): views.read(read)
        for customer in customers
        for name, read in every_read(customer, at).items()
    }
    told = {customer: hub.statements(customer, at) for customer in customers}
    seen.append((at, live, told))
    time.sleep(0.01)  # what comes next is recorded after this moment


def call(customer: dict[str, str], **more: Any) -> Any:
    return touchpoint(customer=customer, **more)


def test_as_of_returns_exactly_what_the_live_reads_said_then(hub: Hub) -> None:
    views = Projections(hub, page_size=2)
    seen: list[Any] = []
    ada = hub.record(
        call({"email": "ada@example.com"}, claims=[{"subject": "answer:x", "value": "yes"}])
    ).customer_id
    grace = hub.record(
        touchpoint(
            source={"channel": "email", "id": "<g1@example.com>"},
            type="email.received",
            customer={"email": "grace@example.com"},
            actor=None,
            data={"subject": "Is the repair booked?"},
        )
    ).customer_id
    moment(hub, views, [ada, grace], seen)  # 0: two customers, one claim in force
    hub.record(
        call(
            {"id": ada},
            claims=[{"subject": "answer:x", "value": "no"}],
            supersedes={"subjects": ["answer:x"], "reason": "misread the contract"},
        )
    )
    moment(hub, views, [ada, grace], seen)  # 1: the claim corrected, with its reason
    hub.merge(ada, grace)
    moment(hub, views, [ada, grace], seen)  # 2: grace merged into ada
    hub.record(
        call(
            {"id": ada},
            claims=[{"subject": "answer:x", "value": "maybe"}],
            supersedes={"subjects": ["answer:x"], "reason": "second correction"},
        )
    )
    hub.record(call({"id": ada}, data={"summary": "answered the repair question"}))
    moment(hub, views, [ada, grace], seen)  # 3: corrected again, grace's email answered

    for number, (at, live, told) in enumerate(seen):
        for (customer, name), expected in live.items():
            replayed = views.as_of(customer, at, every_read(customer, at)[name])
            assert replayed == expected, (number, customer, name)
        for customer, statements in told.items():
            assert hub.statements(customer, at) == statements, (number, customer)

    # and what was known differs from moment to moment the way a reader expects
    claims = [views.as_of(ada, at, every_read(ada, at)["claims"]) for at, _, _ in seen]
    assert [[c["value"] for c in doc["claims"]] for doc in claims] == [
        ["yes"], ["no"], ["no"], ["maybe"]
    ]  # fmt: skip
    timeline = [views.as_of(ada, at, every_read(ada, at)["timeline"]) for at, _, _ in seen]
    assert [len(t["entries"]) for t in timeline] == [1, 2, 3, 5]
    grace_then = views.as_of(grace, seen[2][0], every_read(grace, seen[2][0])["timeline"])
    assert grace_then["merged_into"] == ada
    reasons = [s.get("correction_reason") for s in hub.statements(ada, seen[1][0])]
    assert reasons == ["misread the contract", None]
