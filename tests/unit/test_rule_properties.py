"""Properties of the consistency rules over random sequences of touchpoints (Hypothesis).

Each sequence mixes quotes, claims, facts from the systems of record, corrections, expiring
claims, consent changes and marketing for one customer, in time order. Every touchpoint is
decided against the state left by the accepted ones before it, as the hub does. Then:
- no accepted claim contradicts the value standing on its subject at that moment, judged by
  an independent reading of the accepted history (the latest claim on a subject stands until
  it expires, a later correction names its subject, or a later fact changes that subject),
  and the claims in force in the hub's state are exactly those standing values: so the
  claims in force never hold two values for one subject;
- deciding the accepted touchpoints again, in order, on a fresh state accepts every one
  and ends in the same state; deciding the whole sequence again gives the same decisions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.envelope import Proposal, parse_envelope, propose
from hub.rules import conflicts_of
from hub.state import CustomerState, same_value
from tests.factories import money

START = datetime(2026, 10, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 20, tzinfo=UTC)
SKUS = ("SKU-A", "SKU-B")
PRICES = ("10.00", "12.00", "10.0")  # "10.0" is the same amount as "10.00"
ORDERS = ("O-1", "O-2")
STATUSES = ("placed", "paid", "shipped", "delivered")
SUBJECTS = (
    *(f"price:{sku}" for sku in SKUS),
    *(f"order:{order}:status" for order in ORDERS),
    "delivery:O-1:date",
    "service:S-1:status",
)
# Which facts change which subject (SPEC §5: a fact that changes a subject ends claims on it).
OVERTAKES = {
    "order.placed": lambda d: {f"order:{d['order_id']}:total"},
    "order.status_changed": lambda d: {f"order:{d['order_id']}:status"},
    "service.updated": lambda d: {f"service:{d['request_id']}:status"},
    "service.resolved": lambda d: {f"service:{d['request_id']}:status"},
}


def _value(subject: str) -> st.SearchStrategy[Any]:
    if subject.startswith("price:"):
        return st.sampled_from(PRICES).map(money)
    if subject.endswith(":status"):
        return st.sampled_from((*STATUSES, "open", "resolved"))
    return st.sampled_from(("2026-11-05", "2026-11-06"))


@st.composite
def claims(draw: st.DrawFn) -> list[dict[str, Any]]:
    subjects = draw(st.lists(st.sampled_from(SUBJECTS), min_size=1, max_size=2, unique=True))
    made = []
    for subject in subjects:
        claim: dict[str, Any] = {"subject": subject, "value": draw(_value(subject))}
        if draw(st.booleans()):
            claim["valid_until"] = (START + timedelta(days=draw(st.integers(0, 60)))).isoformat()
        made.append(claim)
    return made


@st.composite
def touchpoint(draw: st.DrawFn, number: int, at: datetime) -> dict[str, Any]:
    """One envelope of any kind the rules care about."""
    kind = draw(
        st.sampled_from(
            ("quote", "claim", "correction", "order", "status", "service", "consent", "marketing")
        )
    )
    doc: dict[str, Any] = {
        "source": {"channel": "phone", "id": f"tp-{number}"},
        "type": "call.outbound",
        "occurred_at": at.isoformat(),
        "customer": {"email": "prop@example.com"},
        "actor": {"kind": "agent", "id": f"agent-{draw(st.integers(1, 3))}"},
        "data": {"summary": "talked"},
    }
    if kind == "quote":
        until = at + timedelta(days=draw(st.integers(1, 20)))
        doc.update(
            type="quote.given",
            source={"channel": "sales", "id": f"tp-{number}"},
            data={
                "sku": draw(st.sampled_from(SKUS)),
                "price": money(draw(st.sampled_from(PRICES))),
                "valid_until": until.isoformat(),
            },
        )
    elif kind == "claim":
        doc["claims"] = draw(claims())
    elif kind == "correction":
        said = draw(claims())
        doc["claims"] = said
        doc["supersedes"] = {"subjects": [c["subject"] for c in said], "reason": "corrected"}
    elif kind == "order":
        order = draw(st.sampled_from(ORDERS))
        doc.update(
            type="order.placed",
            source={"channel": "web", "id": f"tp-{number}"},
            data={"order_id": order, "total": money("19.90")},
        )
    elif kind == "status":
        doc.update(
            type="order.status_changed",
            source={"channel": "erp", "id": f"tp-{number}"},
            data={
                "order_id": draw(st.sampled_from(ORDERS)),
                "status": draw(st.sampled_from(STATUSES)),
            },
        )
    elif kind == "service":
        kind_of = draw(st.sampled_from(("service.opened", "service.updated", "service.resolved")))
        data: dict[str, Any] = {"request_id": "S-1"}
        if kind_of == "service.updated":
            data["status"] = draw(st.sampled_from(("waiting", "scheduled")))
        doc.update(type=kind_of, source={"channel": "service", "id": f"tp-{number}"}, data=data)
    elif kind == "consent":
        doc.update(
            type="consent.changed",
            source={"channel": "web", "id": f"tp-{number}"},
            data={"purpose": "marketing", "granted": draw(st.booleans())},
        )
    else:
        doc.update(
            type="marketing.sent",
            source={"channel": "email", "id": f"tp-{number}"},
            data={"campaign": "autumn", "asset": draw(st.sampled_from(("A1", "A2")))},
        )
    return doc


@st.composite
def sequences(draw: st.DrawFn) -> list[Proposal]:
    """Touchpoints in time order (hours apart, so claims expire along the way)."""
    count = draw(st.integers(1, 25))
    at = START
    made = []
    for number in range(count):
        at += timedelta(hours=draw(st.integers(0, 72)))
        made.append(propose(parse_envelope(draw(touchpoint(number, at))), now=NOW))
    return made


def record_of(proposal: Proposal, number: int) -> dict[str, Any]:
    """The recorded event's fields, as `Hub` stores them and the state replays them."""
    return {
        **proposal.event_fields(),
        "type": proposal.type,
        "recorded_at": (START + timedelta(seconds=number)).isoformat(),
    }


def decide_all(proposals: list[Proposal]) -> tuple[list[list[str]], CustomerState, list[Proposal]]:
    """Decide each in order on the state of those accepted before it (live mode)."""
    state = CustomerState()
    decisions: list[list[str]] = []
    accepted: list[Proposal] = []
    for proposal in proposals:
        rules = [conflict.rule for conflict in conflicts_of(state, proposal)]
        decisions.append(rules)
        if not rules:
            state.apply_touchpoint(record_of(proposal, len(accepted)))
            accepted.append(proposal)
    return decisions, state, accepted


def standing(accepted: list[Proposal], moment: datetime) -> dict[str, Any]:
    """The value standing at `moment` per subject, read off the accepted history without the
    hub's state: the latest claim on a subject, unless it expired by then, or a correction
    or a fact that changes the subject came after it."""
    found: dict[str, Any] = {}
    for index, proposal in enumerate(accepted):
        later = accepted[index + 1 :]
        for claim in proposal.claims:
            found.pop(claim.subject, None)  # a later claim on a subject replaces the earlier
            if claim.valid_until is not None and claim.valid_until <= moment:
                continue
            if any(claim.subject in after.supersedes for after in later):
                continue
            if any(
                claim.subject in OVERTAKES.get(after.type, _none)(after.data) for after in later
            ):
                continue
            found[claim.subject] = claim.value
    return found


def _none(_: dict[str, Any]) -> set[str]:
    return set()


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(sequences())
def test_an_accepted_claim_never_contradicts_the_value_standing_on_its_subject(
    proposals: list[Proposal],
) -> None:
    _, _, accepted = decide_all(proposals)
    for index, proposal in enumerate(accepted):
        before = standing(accepted[:index], proposal.occurred_at)
        for claim in proposal.claims:
            if claim.subject in before and claim.subject not in proposal.supersedes:
                assert same_value(before[claim.subject], claim.value), (claim, before)


@PROPERTY
@given(sequences())
def test_replaying_the_accepted_touchpoints_reproduces_the_decisions_and_the_state(
    proposals: list[Proposal],
) -> None:
    decisions, state, accepted = decide_all(proposals)
    replayed_decisions, replayed_state, replayed = decide_all(accepted)
    assert replayed_decisions == [[] for _ in accepted]
    assert [p.touchpoint_id for p in replayed] == [p.touchpoint_id for p in accepted]
    assert replayed_state == state
    assert decide_all(proposals)[0] == decisions  # deterministic: same input, same answers


@PROPERTY
@given(sequences(), st.integers(0, 30))
def test_the_claims_in_force_in_the_state_are_the_values_standing_in_the_history(
    proposals: list[Proposal], days_later: int
) -> None:
    _, state, accepted = decide_all(proposals)
    moment = (accepted[-1].occurred_at if accepted else START) + timedelta(days=days_later)
    in_force = {s: c.value for s, c in state.claims.items() if c.in_force_at(moment)}
    expected = standing(accepted, moment)
    assert in_force.keys() == expected.keys()
    for subject, value in expected.items():
        assert same_value(in_force[subject], value)
