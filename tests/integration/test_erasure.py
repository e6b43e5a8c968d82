"""Erasure by crypto-shredding, on both stores: the personal values are gone from every
table (the read models too), the chain still verifies, the identity no longer resolves, the
shape stays."""

from __future__ import annotations

from typing import Any

import pytest

from hub.app import Hub
from hub.errors import AmbiguousIdentity, ConflictError, CustomerErased
from hub.identity import identity_key
from hub.shred import ERASED
from projections import reads
from projections.replay import check_projections
from projections.runner import Projections
from tests.factories import touchpoint
from tests.stores import RawStore

EMAIL = "erika.mustermann@example.org"
PHONE = "+49 30 98765432"
SECRETS = [
    "erika.mustermann@example.org",
    "+493098765432",
    "Erika Mustermann",
    "Hauptstrasse 5",
    "boiler in the cellar",
    "special price for Erika",
]


def fill(hub: Hub) -> str:
    first = hub.record(
        touchpoint(
            customer={"email": EMAIL, "phone": PHONE},
            type="profile.updated",
            source={"channel": "web", "id": "profile-1"},
            data={"name": "Erika Mustermann", "address": {"street": "Hauptstrasse 5"}},
        )
    )
    hub.record(
        touchpoint(
            customer={"email": EMAIL},
            type="call.inbound",
            source={"channel": "phone", "id": "call-1"},
            data={"summary": "Erika called about the boiler in the cellar", "duration_s": 300},
            claims=[{"subject": "answer:offer", "value": "special price for Erika"}],
        )
    )
    return first.customer_id


def everything_stored(raw: RawStore) -> str:
    """Every row of every table of the store, as text."""
    if raw.sqlite:
        tables = [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [raw.execute(f'SELECT * FROM "{t}"') for t in tables]
    else:
        tables = [
            r[0]
            for r in raw.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        rows = [raw.execute(f'SELECT t::text FROM "{t}" t') for t in tables]
    return repr(
        [
            (t, [[bytes(c) if isinstance(c, memoryview) else c for c in r] for r in rs])
            for t, rs in zip(tables, rows, strict=True)
        ]
    )


@pytest.fixture
def raw(hub: Hub, store_env: dict[str, str]) -> Any:
    store = RawStore(hub, store_env)
    yield store
    store.close()


def test_no_personal_value_is_stored_in_clear_even_before_erasure(hub: Hub, raw: RawStore) -> None:
    fill(hub)
    stored = everything_stored(raw)
    assert [s for s in SECRETS if s in stored] == []


def test_personal_values_read_back_until_erased(hub: Hub) -> None:
    customer = fill(hub)
    history = hub.history(customer)
    assert history[1]["data"]["name"] == "Erika Mustermann"
    assert identity_key("email", EMAIL) in history[1]["identities"]
    assert hub.load_customer(customer).state.identities


def test_after_erasure_reads_show_erased_and_the_shape_stays(hub: Hub) -> None:
    customer = fill(hub)
    before = hub.history(customer)
    result = hub.erase(customer)
    assert result["erased"] == [customer]
    after = hub.history(customer)
    assert len(after) == len(before) + 1 and after[-1]["event"] == "Erased"
    assert [e.get("type") for e in after[:-1]] == [e.get("type") for e in before]
    assert after[1]["data"]["name"] == ERASED
    assert after[1]["data"]["address"] == {}
    assert after[1]["identities"] == []
    assert after[2]["data"]["duration_s"] == 300  # not personal: analytics keep it
    assert after[2]["claims"][0]["value"] == ERASED
    assert SECRETS[0] not in repr(after)


def test_after_erasure_the_chain_still_verifies(hub: Hub) -> None:
    customer = fill(hub)
    hub.erase(customer)
    report = hub.verify()
    assert report.ok, report.as_dict()


def test_after_erasure_the_identity_no_longer_resolves(hub: Hub) -> None:
    customer = fill(hub)
    hub.erase(customer)
    assert hub.find_customer(identity_key("email", EMAIL)) is None
    again = hub.record(touchpoint(customer={"email": EMAIL}))
    assert again.customer_id != customer


def test_a_touchpoint_naming_an_erased_customer_is_refused(hub: Hub) -> None:
    customer = fill(hub)
    hub.erase(customer)
    with pytest.raises(CustomerErased):
        hub.record(touchpoint(customer={"id": customer}))


def test_erasure_leaves_no_personal_value_in_any_table(hub: Hub, raw: RawStore) -> None:
    customer = fill(hub)
    other = hub.record(
        touchpoint(customer={"email": "someone.else@example.org", "account": "shop:77"})
    ).customer_id
    # an ambiguous touchpoint: a merge suggestion naming both customers' identities
    with pytest.raises(AmbiguousIdentity):
        hub.record(touchpoint(customer={"email": EMAIL, "account": "shop:77"}))
    hub.erase(customer)
    stored = everything_stored(raw)
    assert [s for s in SECRETS if s in stored] == []
    assert identity_key("email", "someone.else@example.org") in hub.history(other)[1]["identities"]


def test_erasing_a_survivor_erases_the_customers_merged_into_it(hub: Hub) -> None:
    customer = fill(hub)
    other = hub.record(touchpoint(customer={"email": "second.address@example.org"})).customer_id
    hub.merge(customer, other)
    result = hub.erase(other)  # names the merged-away one: the person is the survivor's
    assert sorted(result["erased"]) == sorted([customer, other])
    assert hub.find_customer(identity_key("email", "second.address@example.org")) is None
    assert hub.verify().ok


def test_erasure_reaches_the_read_models_projected_before_it(hub: Hub, raw: RawStore) -> None:
    views = Projections(hub, page_size=2)
    customer = fill(hub)
    other = hub.record(
        touchpoint(customer={"email": "second.address@example.org"}, data={"summary": "hi"})
    ).customer_id
    hub.merge(customer, other)
    with pytest.raises(ConflictError):  # a rejected attempt, kept in the conflicts view
        hub.record(
            touchpoint(
                customer={"id": customer},
                data={"summary": "Erika asked for the special price again"},
                claims=[{"subject": "answer:offer", "value": "no special price for Erika"}],
            )
        )
    views.catch_up()
    secrets = [*SECRETS, "second.address@example.org", "Erika asked for the special price"]
    assert [s for s in secrets if s in everything_stored(raw)] != []  # the views had them
    counts_before = views.read(lambda tx: tx.execute("SELECT * FROM {s}view_analytics_counts"))
    hub.erase(customer)
    views.catch_up()
    assert [s for s in secrets if s in everything_stored(raw)] == []
    profile = views.read(lambda tx: reads.read_profile(tx, customer))
    assert profile["erased"] is True
    assert profile["touchpoints"] == 3
    timeline = views.read(lambda tx: reads.read_timeline(tx, customer))
    assert len(timeline["entries"]) == 3
    counts_after = views.read(lambda tx: tx.execute("SELECT * FROM {s}view_analytics_counts"))
    assert counts_after == counts_before  # the shape (and every count) stays
    assert hub.verify().ok
    assert check_projections(views).ok
