"""The consistency rules of SPEC §5, as plain functions of (state, proposal)."""

from __future__ import annotations

from hub.rules import claim_vs_claim, claim_vs_fact, conflicts_of, consent, open_complaint
from tests.factories import money
from tests.unit.rules_helpers import proposal, rules_of, state_after


def quote(
    price: str,
    until: str | None = "2026-11-10T00:00:00Z",
    at: str = "2026-11-03T09:30:00Z",
    **extra,
):
    data = {"sku": "SKU-1", "price": money(price)}
    if until:
        data["valid_until"] = until
    return proposal(
        type="quote.given",
        source={"channel": "sales", "id": f"q-{price}-{at}"},
        occurred_at=at,
        data=data,
        **extra,
    )


def order(status: str = "placed", total: str = "19.90"):
    return (
        proposal(
            type="order.placed",
            source={"channel": "web", "id": "order-A-17"},
            data={"order_id": "A-17", "total": money(total)},
        )
        if status == "placed"
        else proposal(
            type="order.status_changed",
            source={"channel": "erp", "id": f"A-17-{status}"},
            data={"order_id": "A-17", "status": status},
        )
    )


def say(subject: str, value, **extra):
    return proposal(claims=[{"subject": subject, "value": value}], **extra)


# claim-vs-claim ----------------------------------------------------------------------------


def test_second_quote_at_other_price_is_rejected_while_first_is_in_force() -> None:
    state = state_after(quote("19.90"))
    (conflict,) = claim_vs_claim(state, quote("18.00", at="2026-11-05T09:00:00Z"))
    assert conflict.subject == "price:SKU-1"
    assert conflict.attempted == money("18.00")
    assert conflict.earlier["value"] == money("19.90")
    assert conflict.earlier["channel"] == "sales"
    assert conflict.earlier["actor"]["id"] == "agent-17"
    assert conflict.earlier["occurred_at"] == "2026-11-03T09:30:00+00:00"


def test_same_price_said_again_is_no_conflict() -> None:
    state = state_after(quote("19.90"))
    assert claim_vs_claim(state, quote("19.9", at="2026-11-05T09:00:00Z")) == []


def test_price_written_as_text_equals_the_same_amount() -> None:
    state = state_after(quote("19.90"))
    assert claim_vs_claim(state, say("price:SKU-1", "19.90 eur")) == []


def test_quote_after_the_first_expired_is_accepted() -> None:
    state = state_after(quote("19.90", until="2026-11-10T00:00:00Z"))
    assert claim_vs_claim(state, quote("18.00", at="2026-11-11T00:00:00Z")) == []


def test_claim_without_expiry_stands_until_superseded() -> None:
    state = state_after(say("answer:warranty-years", "2"))
    assert rules_of(state, say("answer:warranty-years", "3")) == ["claim-vs-claim"]


def test_correction_supersedes_the_earlier_claim() -> None:
    state = state_after(quote("19.90"))
    correction = quote(
        "18.00",
        at="2026-11-05T09:00:00Z",
        supersedes={"subjects": ["price:SKU-1"], "reason": "pricing error"},
    )
    assert conflicts_of(state, correction) == []
    state = state_after(quote("19.90"), correction)
    assert state.claims["price:SKU-1"].value == money("18.00")
    assert rules_of(state, quote("19.90", at="2026-11-06T09:00:00Z")) == ["claim-vs-claim"]


def test_superseded_claim_is_marked_and_not_in_force() -> None:
    first = say("answer:delivery", "Monday")
    correction = say(
        "answer:other", "x", supersedes={"subjects": ["answer:delivery"], "reason": "wrong day"}
    )
    state = state_after(first, correction)
    assert state.claims["answer:delivery"].superseded_by == correction.touchpoint_id
    assert rules_of(state, say("answer:delivery", "Tuesday")) == []


# claim-vs-fact -----------------------------------------------------------------------------


def test_claiming_shipped_while_the_shop_says_placed_is_rejected() -> None:
    state = state_after(order())
    (conflict,) = claim_vs_fact(state, say("order:A-17:status", "shipped"))
    assert conflict.rule == "claim-vs-fact"
    assert conflict.earlier["value"] == "placed"
    assert conflict.earlier["channel"] == "web"


def test_claim_matching_the_fact_is_accepted() -> None:
    state = state_after(order(), order("shipped"))
    assert conflicts_of(state, say("order:A-17:status", "Shipped")) == []


def test_claim_about_an_order_the_customer_does_not_have_is_rejected() -> None:
    (conflict,) = claim_vs_fact(state_after(order()), say("order:B-99:status", "shipped"))
    assert "no order B-99" in conflict.detail


def test_claim_on_order_total_is_checked_against_the_shop() -> None:
    state = state_after(order(total="19.90"))
    assert rules_of(state, say("order:A-17:total", money("17.00"))) == ["claim-vs-fact"]
    assert rules_of(state, say("order:A-17:total", "19.90 EUR")) == []


def test_fact_change_ends_earlier_claims_on_the_subject() -> None:
    state = state_after(
        order(), order("shipped"), say("order:A-17:status", "shipped"), order("delivered")
    )
    assert not state.claims["order:A-17:status"].in_force_at(proposal().occurred_at)
    assert conflicts_of(state, say("order:A-17:status", "delivered")) == []


def service(step: str, **data):
    return proposal(
        type=f"service.{step}",
        source={"channel": "service", "id": f"R-9-{step}"},
        data={"request_id": "R-9", **data},
    )


def test_visit_date_claim_must_match_the_scheduled_visit() -> None:
    state = state_after(
        service("opened", kind="repair"), service("visit_scheduled", visit_date="2026-11-10")
    )
    assert rules_of(state, say("service:R-9:visit_date", "2026-11-11")) == ["claim-vs-fact"]
    assert rules_of(state, say("service:R-9:visit_date", "2026-11-10")) == []


def test_visit_date_claim_without_a_scheduled_visit_is_rejected() -> None:
    state = state_after(service("opened", kind="repair"))
    (conflict,) = claim_vs_fact(state, say("service:R-9:visit_date", "2026-11-10"))
    assert "no visit_date" in conflict.detail


# consent -----------------------------------------------------------------------------------


def consent_change(granted: bool, at: str = "2026-11-01T00:00:00Z"):
    return proposal(
        type="consent.changed",
        occurred_at=at,
        source={"channel": "phone", "id": f"consent-{granted}-{at}"},
        data={"purpose": "marketing", "granted": granted},
    )


def mailing(asset: str = "winter-catalogue"):
    return proposal(
        type="marketing.sent",
        source={"channel": "marketing", "id": f"m-{asset}"},
        data={"campaign": "winter", "asset": asset},
    )


def test_marketing_after_withdrawn_consent_is_rejected() -> None:
    (conflict,) = consent(state_after(consent_change(False)), mailing())
    assert conflict.earlier["channel"] == "phone"


def test_marketing_after_consent_given_again_is_accepted() -> None:
    state = state_after(consent_change(False), consent_change(True, "2026-11-02T00:00:00Z"))
    assert conflicts_of(state, mailing()) == []


def test_marketing_email_counts_as_marketing() -> None:
    email = proposal(
        type="email.sent",
        source={"channel": "email", "id": "<m1@x>"},
        data={"subject": "Offers", "category": "marketing"},
    )
    assert rules_of(state_after(consent_change(False)), email) == ["consent"]


def test_personal_email_is_not_held_back_by_marketing_consent() -> None:
    email = proposal(
        type="email.sent",
        source={"channel": "email", "id": "<m2@x>"},
        data={"subject": "Your repair", "category": "personal"},
    )
    assert conflicts_of(state_after(consent_change(False)), email) == []


# duplicate material ------------------------------------------------------------------------


def test_same_asset_sent_twice_is_rejected() -> None:
    assert rules_of(state_after(mailing()), mailing()) == ["duplicate-material"]


def test_other_asset_is_accepted() -> None:
    assert conflicts_of(state_after(mailing()), mailing("spring-catalogue")) == []


# open complaint ----------------------------------------------------------------------------


def pitch(**extra):
    return proposal(
        type="sales.contacted",
        source={"channel": "sales", "id": "pitch-1"},
        data={"summary": "New dishwasher", "product": "DW-2"},
        **extra,
    )


def test_selling_while_a_repair_is_open_is_rejected() -> None:
    (conflict,) = open_complaint(state_after(service("opened", kind="repair")), pitch())
    assert conflict.subject == "service:R-9"


def test_quote_while_a_complaint_is_open_is_rejected() -> None:
    state = state_after(service("opened", kind="complaint"))
    assert rules_of(state, quote("19.90")) == ["open-complaint"]


def test_selling_with_every_open_request_acknowledged_is_accepted() -> None:
    state = state_after(service("opened", kind="repair"))
    assert conflicts_of(state, pitch(acknowledged_open_items=["service:R-9"])) == []


def test_acknowledging_one_of_two_open_requests_is_not_enough() -> None:
    other = proposal(
        type="service.opened",
        source={"channel": "service", "id": "R-10"},
        data={"request_id": "R-10", "kind": "complaint"},
    )
    state = state_after(service("opened", kind="repair"), other)
    conflicts = open_complaint(state, pitch(acknowledged_open_items=["R-9"]))
    assert [c.subject for c in conflicts] == ["service:R-10"]


def test_selling_after_the_request_is_resolved_is_accepted() -> None:
    state = state_after(service("opened", kind="repair"), service("resolved", resolution="fixed"))
    assert conflicts_of(state, pitch()) == []


def test_every_conflict_is_listed_not_only_the_first() -> None:
    state = state_after(order(), quote("19.90"), service("opened", kind="repair"))
    attempt = quote(
        "18.00",
        at="2026-11-05T09:00:00Z",
        claims=[{"subject": "order:A-17:status", "value": "shipped"}],
    )
    assert sorted(rules_of(state, attempt)) == ["claim-vs-claim", "claim-vs-fact", "open-complaint"]
