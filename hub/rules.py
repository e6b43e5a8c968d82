"""The consistency rules of SPEC §5: plain functions of (customer state, proposal) to conflicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.envelope import Claim, Proposal
from hub.errors import Conflict
from hub.state import CustomerState, same_value

Rule = Callable[[CustomerState, Proposal], list[Conflict]]


def claim_vs_claim(state: CustomerState, proposal: Proposal) -> list[Conflict]:
    """A claim on a subject whose earlier claim is still in force with another value."""
    conflicts = []
    for claim in proposal.claims:
        if claim.subject in proposal.supersedes:
            continue
        earlier = state.claims.get(claim.subject)
        if earlier is None or not earlier.in_force_at(proposal.occurred_at):
            continue
        if not same_value(earlier.value, claim.value):
            conflicts.append(
                Conflict(
                    rule="claim-vs-claim",
                    subject=claim.subject,
                    attempted=claim.value,
                    earlier={
                        **earlier.said_by,
                        "value": earlier.value,
                        "valid_until": earlier.valid_until,
                    },
                    detail=f"{claim.subject} was already stated as {earlier.value!r}"
                    f" and that still stands; the attempt says {claim.value!r}",
                )
            )
    return conflicts


def claim_vs_fact(state: CustomerState, proposal: Proposal) -> list[Conflict]:
    """A claim contradicting an order or service request fact, or naming one the customer lacks."""
    conflicts = []
    for claim in proposal.claims:
        kind, _, rest = claim.subject.partition(":")
        record_id, _, attribute = rest.rpartition(":")
        if kind == "order" and record_id:
            conflict = _against_record(
                claim,
                state.orders.get(record_id),
                "order",
                record_id,
                attribute,
                {"status": "status", "total": "total"},
            )
        elif kind == "service" and record_id:
            conflict = _against_record(
                claim,
                state.requests.get(record_id),
                "service request",
                record_id,
                attribute,
                {"status": "status", "visit_date": "visit_date"},
            )
        else:
            conflict = None
        if conflict:
            conflicts.append(conflict)
    return conflicts


def _against_record(
    claim: Claim,
    record: dict[str, Any] | None,
    noun: str,
    record_id: str,
    attribute: str,
    facts: dict[str, str],
) -> Conflict | None:
    if record is None:
        return Conflict(
            rule="claim-vs-fact",
            subject=claim.subject,
            attempted=claim.value,
            detail=f"the customer has no {noun} {record_id}",
        )
    if attribute not in facts:
        return None
    known = record.get(facts[attribute])
    if known is None:
        return Conflict(
            rule="claim-vs-fact",
            subject=claim.subject,
            attempted=claim.value,
            earlier={**record["ref"], "value": None},
            detail=f"the system of record has no {attribute} for {noun} {record_id}",
        )
    if same_value(known, claim.value):
        return None
    return Conflict(
        rule="claim-vs-fact",
        subject=claim.subject,
        attempted=claim.value,
        earlier={**record["ref"], "value": known},
        detail=f"{noun} {record_id} has {attribute} {known!r} in the system of record,"
        f" not {claim.value!r}",
    )


def consent(state: CustomerState, proposal: Proposal) -> list[Conflict]:
    """Marketing to a customer who withdrew marketing consent on any channel."""
    if not proposal.is_marketing:
        return []
    given = state.consent.get("marketing")
    if given is None or given["granted"]:
        return []
    return [
        Conflict(
            rule="consent",
            subject="consent:marketing",
            attempted=proposal.type,
            earlier={**given["ref"], "value": False},
            detail="the customer withdrew marketing consent",
        )
    ]


def duplicate_material(state: CustomerState, proposal: Proposal) -> list[Conflict]:
    """Marketing material already sent to this customer."""
    asset = proposal.data.get("asset") if proposal.is_marketing else None
    if not asset or asset not in state.assets_sent:
        return []
    return [
        Conflict(
            rule="duplicate-material",
            subject=f"asset:{asset}",
            attempted=asset,
            earlier={**state.assets_sent[asset], "value": asset},
            detail=f"asset {asset!r} was already sent to this customer",
        )
    ]


def open_complaint(state: CustomerState, proposal: Proposal) -> list[Conflict]:
    """Selling while service requests are open, unless each one is acknowledged."""
    if not proposal.kind.selling:
        return []
    acknowledged = {item.removeprefix("service:") for item in proposal.acknowledged}
    return [
        Conflict(
            rule="open-complaint",
            subject=f"service:{request_id}",
            attempted=proposal.type,
            earlier={**request["ref"], "value": request["status"]},
            detail=f"service request {request_id} ({request['kind']}, {request['priority']})"
            " is open and not acknowledged",
        )
        for request_id, request in sorted(state.open_requests().items())
        if request_id not in acknowledged
    ]


RULES: tuple[Rule, ...] = (
    claim_vs_claim,
    claim_vs_fact,
    consent,
    duplicate_material,
    open_complaint,
)


def conflicts_of(state: CustomerState, proposal: Proposal) -> list[Conflict]:
    """Every conflict the proposal would cause, over all rules."""
    return [conflict for rule in RULES for conflict in rule(state, proposal)]
