"""Identity normalisation and envelope validation (SPEC §3, §4)."""

from __future__ import annotations

from collections.abc import Callable

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.errors import InvalidInput
from hub.identity import _plain_email, normalise_account, normalise_email, normalise_phone
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


EMAILS = [
    "  Li.Wei@Example.COM ",
    "customer.7@batch.example.com",
    "zoë@bücher.example",
    "li.wei",
    "li@",
    "@example.com",
    "a b@example.com",
    "two@@example.com",
]


def _email_validator_says(raw: str) -> str:
    """What email-validator itself answers, as normalise_email would put it."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        return f"refused: not a valid email address: {error}"


def _normalised_or_refused(normalise: Callable[[], str]) -> str:
    try:
        return normalise()
    except InvalidInput as error:
        return f"refused: {error.errors[0][1]}"


@pytest.mark.parametrize("raw", EMAILS)
def test_remembered_email_answers_are_email_validators(raw: str) -> None:
    expected = _email_validator_says(raw)
    for _ in range(3):  # the first answer is computed, the others remembered
        assert _normalised_or_refused(lambda: normalise_email(raw)) == expected


def test_a_remembered_email_refusal_names_each_callers_field() -> None:
    for field in ("customer.email", "email", "customer.email"):
        with pytest.raises(InvalidInput) as error:
            normalise_email("li@", field)
        assert error.value.field == field


PHONES = [
    ("+86 138 0013 8000", None),
    ("030 123456", "DE"),
    ("030 123456", None),
    ("12345", None),
    ("+1 000", None),
    ("call me", "DE"),
]


def _phonenumbers_says(raw: str, region: str | None) -> str:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as error:
        hint = "" if region else " (give it in international form, starting with +)"
        return f"refused: not a phone number: {error}{hint}"
    if not phonenumbers.is_valid_number(number):
        return f"refused: not a valid phone number: {raw!r}"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize(("raw", "region"), PHONES)
def test_remembered_phone_answers_are_phonenumbers(raw: str, region: str | None) -> None:
    expected = _phonenumbers_says(raw, region)
    for _ in range(3):
        assert _normalised_or_refused(lambda: normalise_phone(raw, region)) == expected


def test_a_number_is_remembered_per_default_region() -> None:
    assert normalise_phone("030 123456", "DE") == "+4930123456"
    with pytest.raises(InvalidInput):
        normalise_phone("030 123456")
    assert normalise_phone("030 123456", "DE") == "+4930123456"


# -- the plain-address shortcut gives the library's answer --------------------------------

LOCAL_CHARS = "aZk09._+-!#'~"
DOMAIN_CHARS = "aZx09-."


def _library_answer(address: str) -> str | None:
    try:
        return validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def _assert_shortcut_agrees(address: str) -> None:
    plain = _plain_email(address)
    if plain is not None:
        assert plain == _library_answer(address), address


@pytest.mark.parametrize(
    "address",
    [
        "Li.Wei@Example.COM", "a@b.co", "a@1.2.3.com", "x@a.123", "a_b@x-y.de", "-a@b.de",
        "a.@b.de", ".a@b.de", "a..b@c.de", "a@ab--cd.de", "a@xn--bcher-kva.de", "a@test",
        "a@foo.test", "a@foo.local", "a@localhost", "a@b.c", "a@-b.de", "a@b-.de", "a@b..de",
        "a@b.de.", "@b.de", "a@", "a@@b.de", "a@b@c.de", "\u212a@b.de", "k@b.de",
        "a" * 64 + "@b.de", "a" * 65 + "@b.de", "a@" + "b" * 63 + ".de", "a@" + "b" * 64 + ".de",
        "a@" + ".".join(["b" * 60] * 4) + ".de", "a+tag@shop.example.org",
    ],
)  # fmt: skip
def test_plain_address_shortcut_agrees_with_email_validator(address: str) -> None:
    _assert_shortcut_agrees(address)


def test_plain_address_shortcut_is_taken_for_ordinary_addresses() -> None:
    assert _plain_email("Li.Wei@Example.COM") == "li.wei@example.com"
    assert _plain_email("a@foo.test") is None  # special-use: the library refuses it
    assert _plain_email("a@xn--bcher-kva.de") is None  # Punycode: the library decodes it


@given(
    local=st.text(LOCAL_CHARS, min_size=0, max_size=70),
    labels=st.lists(st.text(DOMAIN_CHARS, min_size=0, max_size=12), min_size=1, max_size=4),
    tld=st.sampled_from(["de", "com", "c", "123", "test", "local", "io", "Co", "x-y"]),
)
@settings(max_examples=3000, deadline=None)
def test_plain_address_shortcut_agrees_on_generated_addresses(
    local: str, labels: list[str], tld: str
) -> None:
    _assert_shortcut_agrees(f"{local}@{'.'.join([*labels, tld])}")
