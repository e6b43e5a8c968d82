"""Identity normalisation and envelope validation (SPEC §3, §4)."""

from __future__ import annotations

import pytest

from hub.errors import InvalidInput
from hub.identity import normalise_account, normalise_email, normalise_phone
from tests.unit.rules_helpers import proposal


def test_email_is_trimmed_and_lower_cased() -> None:
    assert normalise_email("  Li.Wei@Example.COM ") == "li.wei@example.com"


@pytest.mark.parametrize("raw", ["li.wei", "li@", "@example.com", "a b@example.com"])
def test_invalid_email_names_the_field(raw: str) -> None:
    with pytest.raises(InvalidInput) as error:
        normalise_email(raw)
    assert error.value.field == "customer.email"


@pytest.mark.parametrize("raw", ["+86 138 0013 8000", "+86-138-0013-8000", "+8613800138000"])
def test_phone_numbers_become_e164(raw: str) -> None:
    assert normalise_phone(raw) == "+8613800138000"


def test_national_number_uses_the_default_region() -> None:
    assert normalise_phone("030 123456", "DE") == "+4930123456"


@pytest.mark.parametrize("raw", ["12345", "+1 000", "call me"])
def test_invalid_phone_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_phone(raw)


def test_account_system_is_lower_cased() -> None:
    assert normalise_account("Shop:1234") == "shop:1234"


def test_account_without_system_is_refused() -> None:
    with pytest.raises(InvalidInput):
        normalise_account("1234")


def test_proposal_carries_every_identity_normalised() -> None:
    p = proposal(
        customer={
            "email": "Li.Wei@Example.com",
            "phone": "+86 138 0013 8000",
            "account": "shop:1234",
        }
    )
    assert p.identities == ("email:li.wei@example.com", "phone:+8613800138000", "account:shop:1234")


def test_touchpoint_id_is_derived_from_the_source_key() -> None:
    first = proposal(source={"channel": "phone", "id": "call-1"})
    again = proposal(source={"channel": "phone", "id": "call-1"})
    other = proposal(source={"channel": "email", "id": "call-1"})
    assert first.touchpoint_id == again.touchpoint_id != other.touchpoint_id


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"type": "order.teleported"}, "type"),
        ({"customer": {}}, "customer"),
        ({"source": {"channel": "carrier-pigeon", "id": "1"}}, "source.channel"),
        ({"occurred_at": "2027-01-01T00:00:00Z"}, "occurred_at"),
        (
            {
                "type": "quote.given",
                "data": {"sku": "S", "price": {"amount": "cheap", "currency": "EUR"}},
            },
            "data.price.amount",
        ),
        (
            {"type": "order.placed", "data": {"total": {"amount": "1", "currency": "EUR"}}},
            "data.order_id",
        ),
    ],
)
def test_invalid_envelope_names_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        proposal(**overrides)
    assert error.value.field == field
