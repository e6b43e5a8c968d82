"""`hub demo`: a realistic, reproducible dataset, recorded through the same batch path as the
channels, so dashboards, feeds and benchmarks have something true to show.

A seeded generator writes a few months of every channel's touchpoints for a few hundred
customers: registrations, orders through delivery, emails and replies (some never answered),
calls, service requests (some overdue), quotes and promises, consent and marketing. Some
answers contradict what another channel said and are blocked by the rules; a back-filled
slice of history (record mode) holds contradictions the hub detects and keeps.

Same seed and anchor: same envelopes, same outcomes, same digest.
"""

from __future__ import annotations

import argparse
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from hub.app import Accepted, Hub
from hub.envelope import parse_envelope
from hub.errors import HubError
from hub.settings import Settings

FIRST = [
    "Anna",
    "Ben",
    "Chiara",
    "Dmitri",
    "Emma",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kara",
    "Luis",
    "Mei",
    "Noah",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Yara",
    "Zoe",
]
LAST = [
    "Schmidt",
    "Rossi",
    "Novak",
    "Okafor",
    "Tanaka",
    "Larsen",
    "Garcia",
    "Kowalski",
    "Dubois",
    "Haddad",
    "Nguyen",
    "Silva",
    "Jansen",
    "Moreau",
    "Petrov",
    "Weber",
]
STREETS = ["Lindenweg", "Hafenstrasse", "Via Roma", "Rue Verte", "Kingsway", "Birkenallee"]
REGIONS = ["DE-BE", "DE-HH", "DE-BY", "AT-9", "CH-ZH", "NL-NH"]
AGENTS = [
    {"kind": "agent", "id": f"agent-{n}", "name": name}
    for n, name in enumerate(
        ["Zhang Min", "Lea Vogel", "Omar Aziz", "Eva Lind", "Tom Berg", "Ida Kern"], start=11
    )
]
SYSTEM = {"kind": "system", "id": "shop"}
PRODUCTS = {
    "BOILER-X2": "1490.00",
    "PUMP-S": "349.00",
    "VALVE-K7": "39.90",
    "FILTER-3": "19.90",
    "THERMO-T1": "129.00",
    "SERVICE-PLAN": "99.00",
}


@dataclass
class Plan:
    """The touchpoints to submit, each with its mode, in the order they will be recorded."""

    items: list[tuple[datetime, str, dict[str, Any]]] = field(default_factory=list)

    def add(self, at: datetime, envelope: dict[str, Any], mode: str = "live") -> None:
        envelope["occurred_at"] = at.isoformat()
        self.items.append((at, mode, envelope))


class Story:
    """One customer's months with the company."""

    def __init__(self, rng: random.Random, n: int, anchor: datetime, plan: Plan):
        self.rng, self.n, self.anchor, self.plan = rng, n, anchor, plan
        first, last = rng.choice(FIRST), rng.choice(LAST)
        self.name = f"{first} {last}"
        self.email = f"{first}.{last}.{n}@example.com".lower()
        self.phone = f"+49 30 {5550000 + n}" if rng.random() < 0.6 else None
        self.region = rng.choice(REGIONS)
        self.seq = 0

    def ref(self, with_phone: bool = False) -> dict[str, str]:
        ref = {"email": self.email}
        if with_phone and self.phone:
            ref = {"phone": self.phone} if self.rng.random() < 0.5 else ref | {"phone": self.phone}
        return ref

    def sid(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.n}-{self.seq}"

    def touch(
        self, at: datetime, channel: str, kind: str, data: dict[str, Any], **extra: Any
    ) -> str:
        source = extra.pop("source_id", None) or self.sid(kind.split(".")[0])
        mode = extra.pop("mode", "live")
        envelope = {
            "source": {"channel": channel, "id": source},
            "type": kind,
            "customer": extra.pop("customer", None) or self.ref(channel == "phone"),
            "data": data,
            **extra,
        }
        self.plan.add(at, envelope, mode)
        return f"{channel}:{source}"

    def when(self, days_ago: float) -> datetime:
        return self.anchor - timedelta(days=days_ago, minutes=self.rng.randint(0, 600))

    def agent(self) -> dict[str, str]:
        return self.rng.choice(AGENTS)

    def tell(self) -> None:
        rng = self.rng
        start = rng.uniform(60, 180)
        self.touch(
            self.when(start),
            "web",
            "profile.updated",
            {
                "name": self.name,
                "region": self.region,
                "address": {
                    "street": f"{rng.choice(STREETS)} {rng.randint(1, 90)}",
                    "region": self.region,
                },
            },
        )
        self.touch(
            self.when(start - 0.01),
            "web",
            "consent.changed",
            {"purpose": "marketing", "granted": rng.random() < 0.7},
        )
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            self.order(rng.uniform(1, start - 1))
        for _ in range(rng.choice([0, 1, 1, 2])):
            self.email_thread(rng.uniform(0.2, start - 1))
        if rng.random() < 0.35:
            self.service(rng.uniform(0.05, start - 1))
        if rng.random() < 0.3:
            self.quote(rng.uniform(1, 40))
        if rng.random() < 0.25:
            self.event_registration(rng.uniform(0.5, 30))
        if rng.random() < 0.4:
            self.touch(
                self.when(rng.uniform(1, start)),
                "marketing",
                "marketing.sent",
                {"campaign": "spring", "asset": "brochure-2026"},
                actor={"kind": "system"},
            )
        if rng.random() < 0.2:
            self.touch(
                self.when(rng.uniform(1, start)),
                "chat",
                "chat.message",
                {"text": "Do you deliver on Saturdays?"},
            )

    def order(self, days_ago: float) -> None:
        rng = self.rng
        sku = rng.choice(list(PRODUCTS))
        qty = rng.randint(1, 3)
        order_id = self.sid("A")
        total = f"{float(PRODUCTS[sku]) * qty:.2f}"
        self.touch(
            self.when(days_ago),
            "web",
            "order.placed",
            {
                "order_id": order_id,
                "total": {"amount": total, "currency": "EUR"},
                "items": [
                    {"sku": sku, "qty": qty, "price": {"amount": PRODUCTS[sku], "currency": "EUR"}}
                ],
                "product": sku,
                "region": self.region,
            },
            actor=SYSTEM,
        )
        steps = ["paid", "shipped", "delivered"]
        done = steps[: rng.choice([1, 2, 3, 3, 3])] if days_ago > 3 else steps[:1]
        for i, status in enumerate(done):
            self.touch(
                self.when(days_ago - 0.5 - i),
                "erp",
                "order.status_changed",
                {"order_id": order_id, "status": status},
                actor={"kind": "system", "id": "erp"},
            )
        if done[-1] != "shipped" and rng.random() < 0.15 and days_ago < 20:
            # A phone agent tells the customer it shipped; the ERP says otherwise: blocked.
            self.touch(
                self.when(max(0.01, days_ago - 2)),
                "phone",
                "call.outbound",
                {"summary": "Told the customer the order is on its way", "duration_s": 120},
                actor=self.agent(),
                claims=[{"subject": f"order:{order_id}:status", "value": "shipped"}],
            )

    def email_thread(self, days_ago: float) -> None:
        rng = self.rng
        message = f"<{self.sid('m')}@mail.example.com>"
        self.touch(
            self.when(days_ago),
            "email",
            "email.received",
            {"message_id": message, "subject": "Question about my order"},
            source_id=message,
        )
        if days_ago > 1.5 and rng.random() < 0.8:
            reply = f"<{self.sid('r')}@hub.example.com>"
            self.touch(
                self.when(days_ago - rng.uniform(0.05, 1.2)),
                "email",
                "email.sent",
                {"message_id": reply, "subject": "Re: Question about my order"},
                source_id=reply,
                actor=self.agent(),
                in_reply_to=[f"email:{message}"],
            )

    def service(self, days_ago: float) -> None:
        rng = self.rng
        request = self.sid("SR")
        kind = rng.choice(["repair", "repair", "complaint", "question"])
        priority = rng.choice(["normal", "normal", "high", "urgent", "low"])
        self.touch(
            self.when(days_ago),
            "service",
            "service.opened",
            {
                "request_id": request,
                "kind": kind,
                "priority": priority,
                "subject": "Boiler makes a noise" if kind == "repair" else "Invoice unclear",
            },
            actor={"kind": "system", "id": "servicedesk"},
        )
        if days_ago > 2 and rng.random() < 0.75:
            if kind == "repair":
                visit = (self.anchor - timedelta(days=days_ago - 2)).date().isoformat()
                self.touch(
                    self.when(days_ago - 1),
                    "service",
                    "service.visit_scheduled",
                    {"request_id": request, "visit_date": visit},
                    actor=self.agent(),
                )
            self.touch(
                self.when(days_ago - 2),
                "service",
                "service.resolved",
                {"request_id": request, "resolution": "Fixed on site"},
                actor=self.agent(),
            )
        elif kind == "complaint" and rng.random() < 0.5:
            # Selling to a customer with an open complaint is held back by the rules.
            self.touch(
                self.when(max(0.01, days_ago - 0.5)),
                "sales",
                "sales.contacted",
                {"summary": "Offered the service plan", "product": "SERVICE-PLAN"},
                actor=self.agent(),
            )

    def quote(self, days_ago: float) -> None:
        rng = self.rng
        sku = rng.choice(list(PRODUCTS))
        price = PRODUCTS[sku]
        until = (self.anchor + timedelta(days=rng.randint(5, 30))).isoformat()
        self.touch(
            self.when(days_ago),
            "sales",
            "quote.given",
            {"sku": sku, "price": {"amount": price, "currency": "EUR"}, "valid_until": until},
            actor=self.agent(),
        )
        if rng.random() < 0.3:
            cheaper = f"{float(price) * 0.9:.2f}"
            self.touch(
                self.when(max(0.01, days_ago - 1)),
                "phone",
                "quote.given",
                {"sku": sku, "price": {"amount": cheaper, "currency": "EUR"}},
                actor=self.agent(),
            )
        if rng.random() < 0.4:
            promise = self.sid("P")
            due = (self.anchor + timedelta(days=rng.randint(-5, 10))).isoformat()
            self.touch(
                self.when(max(0.01, days_ago - 0.2)),
                "phone",
                "promise.made",
                {"promise_id": promise, "what": "Send the installation manual", "due": due},
                actor=self.agent(),
            )

    def event_registration(self, days_ago: float) -> None:
        event = self.sid("EV")
        self.touch(
            self.when(days_ago),
            "web",
            "web.registered",
            {
                "event_id": event,
                "event_name": "Heating workshop",
                "starts_at": (self.anchor + timedelta(days=14)).isoformat(),
            },
        )
        if self.rng.random() < 0.6:
            self.touch(
                self.when(max(0.01, days_ago - 0.3)),
                "email",
                "registration.confirmed",
                {"event_id": event},
                actor={"kind": "system"},
            )

    def backfill(self) -> None:
        """Old history imported in record mode: two answers that contradict each other."""
        at = self.rng.uniform(200, 300)
        first = self.rng.choice(["2", "3"])
        for i, years in enumerate([first, "5"]):
            self.touch(
                self.when(at - i * 3),
                "import",
                "note.added",
                {"text": f"Told the customer the warranty is {years} years"},
                actor=self.agent(),
                mode="record",
                claims=[{"subject": "answer:warranty-years", "value": years}],
            )


def plan(seed: int, customers: int, anchor: datetime) -> Plan:
    """Every envelope of the demo, in the order it will be recorded (by occurred_at)."""
    rng = random.Random(seed)
    result = Plan()
    for n in range(customers):
        story = Story(rng, n, anchor, result)
        story.tell()
        if rng.random() < 0.08:
            story.backfill()
    result.items.sort(key=lambda item: item[0])
    return result


@dataclass
class Outcome:
    envelopes: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    detected: int = 0
    digest: Any = field(default_factory=hashlib.sha256)


def run(hub: Hub, seed: int, customers: int, anchor: datetime, batch: int = 200) -> Outcome:
    """Record the demo through the batch path; the outcome counts and a digest of it all."""
    outcome = Outcome()
    items = plan(seed, customers, anchor).items
    for chunk in _chunks(items, batch):
        for mode in ("record", "live"):
            group = [envelope for _, m, envelope in chunk if m == mode]
            if not group:
                continue
            results = hub.record_batch([parse_envelope(e) for e in group], mode)
            for envelope, result in zip(group, results, strict=True):
                _count(outcome, anchor, envelope, result)
    return outcome


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _count(outcome: Outcome, anchor: datetime, envelope: dict[str, Any], result: Any) -> None:
    outcome.envelopes += 1
    if isinstance(result, HubError):
        outcome.rejected[result.kind] = outcome.rejected.get(result.kind, 0) + 1
        seen = result.kind
    else:
        assert isinstance(result, Accepted)
        outcome.duplicates += result.duplicate
        outcome.accepted += not result.duplicate
        outcome.detected += bool(result.detected_conflicts)
        seen = "duplicate" if result.duplicate else "accepted"
    when = datetime.fromisoformat(envelope["occurred_at"]) - anchor
    line = {**envelope, "occurred_at": when.total_seconds(), "outcome": seen}
    outcome.digest.update(orjson.dumps(line, option=orjson.OPT_SORT_KEYS) + b"\n")


def today() -> datetime:
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(hours=12)


def demo(args: argparse.Namespace, settings: Settings) -> int:
    from api.app import build_hub

    anchor = datetime.fromisoformat(args.anchor) if args.anchor else today()
    if anchor.tzinfo is None:
        anchor = anchor.replace(tzinfo=UTC)
    hub = build_hub(settings)
    try:
        if hub.recorder.max_notification_id() and not args.force:
            print("hub demo: the store is not empty; add --force to add the demo anyway")
            return 1
        outcome = run(hub, args.seed, args.customers, anchor)
        events = hub.recorder.max_notification_id() or 0
    finally:
        hub.close()
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(outcome.rejected.items())) or "none"
    print(
        f"hub demo: {outcome.envelopes} touchpoints for {args.customers} customers "
        f"(seed {args.seed}, anchor {anchor.isoformat()}): {outcome.accepted} recorded, "
        f"{outcome.detected} with detected contradictions, rejected: {rejected}; "
        f"store now at position {events}; digest {outcome.digest.hexdigest()}"
    )
    return 0


def register(commands: Any) -> None:
    cmd = commands.add_parser("demo", help="fill the store with a reproducible demo dataset")
    cmd.add_argument("--seed", type=int, default=7)
    cmd.add_argument("--customers", type=int, default=300)
    cmd.add_argument("--anchor", help="the demo's 'now' (ISO time; default: today 12:00 UTC)")
    cmd.add_argument("--force", action="store_true", help="add to a store that is not empty")
    cmd.set_defaults(run=demo)
