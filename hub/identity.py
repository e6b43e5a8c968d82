"""Identity normalisation: emails, E.164 phone numbers and account ids as identity keys."""

from __future__ import annotations

import functools
import hashlib
import re

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from hub.errors import InvalidInput

ACCOUNT_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,31}:\S{1,128}$")


# Validation is the costly part of proposing a touchpoint, and a customer's addresses come
# back touchpoint after touchpoint (a channel that sends a bad one sends it again): remember
# both answers, a normalised value or the reason for refusing it, a bounded number of each.
CACHE_SIZE = 65_536


# A plain ASCII address (most are) gets email-validator's answer without running it: the
# library keeps such an address as it is, the domain lower-cased, so the answer is the address
# lower-cased. Whatever is not plainly valid (quoted or unusual characters, Unicode, Punycode,
# `--` in the domain, a one-letter or numeric top-level domain, special-use names, lengths
# near the limits) goes to the library. tests/unit/test_identity.py holds the two to the same
# answers.
_PLAIN_LOCAL = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*")
_PLAIN_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


def _plain_email(address: str) -> str | None:
    """The normalised form of a plainly valid ASCII address; None: ask the library."""
    if not address.isascii() or len(address) > 254:
        return None
    local, at, domain = address.lower().partition("@")
    if (
        not at
        or len(local) > 64
        or len(domain) > 253
        or "--" in domain
        or not _PLAIN_LOCAL.fullmatch(local)
        or not _PLAIN_DOMAIN.fullmatch(domain)
    ):
        return None
    for name in SPECIAL_USE_DOMAIN_NAMES:
        if domain == name or domain.endswith("." + name):
            return None
    return f"{local}@{domain}"


@functools.lru_cache(maxsize=CACHE_SIZE)
def _email_or_refusal(raw: str) -> tuple[str | None, str]:
    address = raw.strip()
    plain = _plain_email(address)
    if plain is not None:
        return plain, ""
    try:
        valid = validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        return None, f"not a valid email address: {error}"
    return valid.normalized.lower(), ""


def normalise_email(raw: str, field: str = "customer.email") -> str:
    """Trimmed, validated and lower-cased email address."""
    value, refusal = _email_or_refusal(raw)
    if value is None:
        raise InvalidInput(field, refusal)
    return value


@functools.lru_cache(maxsize=CACHE_SIZE)
def _phone_or_refusal(raw: str, default_region: str | None) -> tuple[str | None, str]:
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as error:
        hint = "" if default_region else " (give it in international form, starting with +)"
        return None, f"not a phone number: {error}{hint}"
    if not phonenumbers.is_valid_number(number):
        return None, f"not a valid phone number: {raw!r}"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), ""


def normalise_phone(
    raw: str, default_region: str | None = None, field: str = "customer.phone"
) -> str:
    """The number in E.164 form, validated by the phonenumbers library."""
    value, refusal = _phone_or_refusal(raw, default_region)
    if value is None:
        raise InvalidInput(field, refusal)
    return value


def normalise_account(raw: str, field: str = "customer.account") -> str:
    """An account id as `system:id`, the system lower-cased."""
    system, sep, local = raw.strip().partition(":")
    value = f"{system.lower()}:{local.strip()}"
    if not sep or not ACCOUNT_PATTERN.match(value):
        raise InvalidInput(field, f"an account id is `system:id`, got {raw!r}")
    return value


def identity_key(kind: str, value: str) -> str:
    """The identity as the hub stores it, e.g. `email:li.wei@example.com`."""
    return f"{kind}:{value}"


def identity_digest(key: str) -> str:
    """The index key of an identity: a digest, so the index holds no contact data."""
    return "i:" + hashlib.sha256(key.encode()).hexdigest()


def source_digest(channel: str, source_id: str) -> str:
    """The index key of a source key."""
    return "s:" + hashlib.sha256(f"{channel}\x1f{source_id}".encode()).hexdigest()
