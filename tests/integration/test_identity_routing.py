"""Identity resolution, ambiguity, merge and unmerge (SPEC §4), on both stores."""

from __future__ import annotations

import pytest

from hub.app import Hub
from hub.errors import AmbiguousIdentity, ConflictError, CustomerNotFound, MergeRefused
from tests.factories import money, touchpoint


def contact(**customer: str) -> str:
    return touchpoint(customer=customer)


def test_the_same_person_written_differently_is_one_customer(hub: Hub) -> None:
    first = hub.record(contact(email="Li.Wei@Example.com", phone="+86 138 0013 8000"))
    again = hub.record(contact(phone="+86-138-0013-8000"))
    assert first.customer_id == again.customer_id


def test_new_identities_are_attached_to_the_customer(hub: Hub) -> None:
    first = hub.record(contact(email="li.wei@example.com"))
    hub.record(contact(email="li.wei@example.com", account="shop:1234"))
    assert hub.find_customer("account:shop:1234") == first.customer_id


def test_identities_of_two_customers_are_ambiguous_and_named(hub: Hub) -> None:
    a = hub.record(contact(email="a@example.com")).customer_id
    b = hub.record(contact(phone="+4930123456")).customer_id
    with pytest.raises(AmbiguousIdentity) as error:
        hub.record(contact(email="a@example.com", phone="+4930123456"))
    assert set(error.value.customers) == {a, b}
    assert error.value.problem()["type"] == "ambiguous-identity"


def test_customer_id_picks_one_of_several_and_a_merge_is_suggested(hub: Hub) -> None:
    a = hub.record(contact(email="a@example.com")).customer_id
    b = hub.record(contact(phone="+4930123456")).customer_id
    accepted = hub.record(
        touchpoint(customer={"id": a, "email": "a@example.com", "phone": "+4930123456"})
    )
    assert accepted.customer_id == a
    suggestions = [
        hub.mapper.to_domain_event(n)
        for n in hub.recorder.select_notifications(1, 1000)
        if n.topic.endswith("MergeSuggestion.Suggested")
    ]
    assert [set(s.customers) for s in suggestions] == [{a, b}]
    assert hub.find_customer("phone:+4930123456") == b  # the phone stays with its owner


def test_unknown_customer_id_names_the_field(hub: Hub) -> None:
    with pytest.raises(CustomerNotFound) as error:
        hub.record(touchpoint(customer={"id": "0b7f5f2e-7a1c-4f4b-9b7e-2f1d0c9e8a11"}))
    assert error.value.problem()["errors"][0]["field"] == "customer.id"


def test_after_a_merge_the_merged_identities_route_to_the_survivor(hub: Hub) -> None:
    a = hub.record(contact(email="a@example.com")).customer_id
    b = hub.record(contact(phone="+4930123456")).customer_id
    hub.merge(a, b)
    assert hub.find_customer("phone:+4930123456") == a
    later = hub.record(contact(phone="+4930123456"))
    assert later.customer_id == a
    # and now both identities together are no longer ambiguous
    assert hub.record(contact(email="a@example.com", phone="+4930123456")).customer_id == a


def test_merged_history_counts_in_the_survivors_rules(hub: Hub) -> None:
    a = hub.record(contact(email="a@example.com")).customer_id
    b = hub.record(
        touchpoint(
            type="order.placed",
            customer={"phone": "+4930123456"},
            data={"order_id": "B-1", "total": money("9.00")},
        )
    ).customer_id
    hub.merge(a, b)
    with pytest.raises(ConflictError):
        hub.record(
            touchpoint(
                customer={"email": "a@example.com"},
                claims=[{"subject": "order:B-1:status", "value": "shipped"}],
            )
        )
    history = hub.history(a)
    assert {e["customer_id"] for e in history} == {a, b}


def test_unmerge_restores_both_and_keeps_what_arrived_meanwhile(hub: Hub) -> None:
    a = hub.record(contact(email="a@example.com")).customer_id
    b = hub.record(contact(phone="+4930123456")).customer_id
    hub.merge(a, b)
    meanwhile = hub.record(contact(phone="+4930123456"))
    assert meanwhile.customer_id == a
    hub.unmerge(a, b)
    assert hub.find_customer("phone:+4930123456") == b
    assert hub.load_customer(b).merged_into is None
    assert hub.load_customer(a).merged_from == []
    assert meanwhile.position in [e["position"] for e in hub.history(a)]
    assert meanwhile.position not in [e["position"] for e in hub.history(b)]


def test_merge_refuses_itself_and_chains(hub: Hub) -> None:
    a = hub.record(contact(email="a@example.com")).customer_id
    b = hub.record(contact(email="b@example.com")).customer_id
    c = hub.record(contact(email="c@example.com")).customer_id
    with pytest.raises(MergeRefused):
        hub.merge(a, a)
    hub.merge(a, b)
    with pytest.raises(MergeRefused):
        hub.merge(c, b)
