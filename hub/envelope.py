"""The touchpoint envelope every channel submits, and the checked proposal the hub decides on."""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from hub.errors import InvalidInput
from hub.identity import identity_key, normalise_account, normalise_email, normalise_phone
from hub.touchpoints import REGISTRY, TouchpointType

BUILT_IN_CHANNELS = frozenset(
    {"web", "email", "phone", "service", "sales", "marketing", "erp", "chat", "social", "import"}
)
TOUCHPOINT_NAMESPACE = uuid.UUID("6f1c3c52-2b0e-4d55-9a57-3f1f8e0c2a11")
_NAMESPACE_BYTES = TOUCHPOINT_NAMESPACE.bytes
MAX_FUTURE = timedelta(days=1)
SUBJECT_PATTERN = r"^[a-z][a-z0-9_]*:\S{1,300}$"


@dataclass(frozen=True)
class Limits:
    """Bounds on one touchpoint beyond its schema (hub/settings.py sets them)."""

    max_claims: int = 50
    max_string_chars: int = 20_000
    max_data_depth: int = 8
    max_data_bytes: int = 256 * 1024


DEFAULT_LIMITS = Limits()


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_-]*$")
    id: str = Field(min_length=1, max_length=1000)


class CustomerRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID | None = None
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    account: str | None = Field(default=None, max_length=200)


class Actor(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: str = Field(min_length=1, max_length=40)
    id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str = Field(pattern=SUBJECT_PATTERN)
    value: JsonValue
    valid_until: datetime | None = None

    @field_validator("valid_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. Z or +01:00)")
        return value


class Supersedes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subjects: list[str] = Field(min_length=1, max_length=50)
    reason: str = Field(min_length=1, max_length=2000)

    @field_validator("subjects")
    @classmethod
    def _subjects(cls, value: list[str]) -> list[str]:
        for subject in value:
            if not re.match(SUBJECT_PATTERN, subject):
                raise ValueError(f"not a claim subject: {subject!r}")
        return value


class Envelope(BaseModel):
    """The touchpoint as a channel submits it (SPEC §3)."""

    model_config = ConfigDict(extra="forbid")
    source: Source
    type: str = Field(max_length=80)
    occurred_at: datetime
    customer: CustomerRef
    actor: Actor | None = None
    # Factories, not `= []`: pydantic deep-copies a mutable default at every validation.
    data: dict[str, Any] = Field(default_factory=dict)
    claims: list[ClaimIn] = Field(default_factory=list)  # how many: Limits.max_claims
    in_reply_to: list[str] = Field(default_factory=list, max_length=100)
    supersedes: Supersedes | None = None
    acknowledged_open_items: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give a time zone (e.g. Z or +01:00)")
        return value


@dataclass(frozen=True)
class Claim:
    """A statement made to the customer about a subject."""

    subject: str
    value: Any
    valid_until: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        until = self.valid_until.isoformat() if self.valid_until else None
        return {"subject": self.subject, "value": self.value, "valid_until": until}


@dataclass(slots=True)  # not frozen: a frozen init costs ~4x, once per touchpoint
class Proposal:
    """A validated, normalised touchpoint, ready for the rules."""

    touchpoint_id: str
    kind: TouchpointType
    channel: str
    source_id: str
    occurred_at: datetime
    customer_id: str | None
    identities: tuple[str, ...]
    actor: dict[str, Any] | None
    data: dict[str, Any]
    claims: tuple[Claim, ...] = ()
    in_reply_to: tuple[str, ...] = ()
    supersedes: tuple[str, ...] = ()
    correction_reason: str | None = None
    acknowledged: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.kind.name

    @property
    def is_marketing(self) -> bool:
        return self.kind.marketing or (
            self.kind.name == "email.sent" and self.data.get("category") == "marketing"
        )

    @property
    def is_outbound_personal(self) -> bool:
        return self.kind.outbound and not self.is_marketing

    def event_fields(
        self,
        mode: str = "live",
        new_identities: list[str] | None = None,
        detected: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The fields of the touchpoint event that records this proposal."""
        return {
            "touchpoint_id": self.touchpoint_id,
            "channel": self.channel,
            "source_id": self.source_id,
            "occurred_at": self.occurred_at.isoformat(),
            "actor": self.actor,
            "data": self.data,
            "claims": [claim.as_dict() for claim in self.claims],
            "in_reply_to": list(self.in_reply_to),
            "supersedes": list(self.supersedes),
            "correction_reason": self.correction_reason,
            "acknowledged": list(self.acknowledged),
            "identities": list(self.identities),
            "new_identities": list(new_identities or []),
            "mode": mode,
            "detected_conflicts": list(detected or []),
        }


def touchpoint_id_for(channel: str, source_id: str) -> str:
    """The touchpoint id, derived from the source key so every retry names the same one.

    `str(uuid.uuid5(TOUCHPOINT_NAMESPACE, name))`, spelt out: the UUID objects cost more than
    the hash on the batch path.
    """
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + f"{channel}\x1f{source_id}".encode()).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _field_name(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def invalid_from(error: ValidationError, prefix: str = "") -> InvalidInput:
    """An InvalidInput naming every field pydantic found wrong."""
    errors = [(prefix + _field_name(e["loc"]), e["msg"]) for e in error.errors(include_url=False)]
    first, *more = errors
    return InvalidInput(first[0], first[1], more)


# orjson reads an integer beyond 64 bits as a float (18446744073709551616 becomes
# 1.8446744073709552e+19, -9223372036854775809 too): a text with a run of 19 digits is read
# again by the standard library, which keeps integers exact, so `check_limits` can name one.
# The run is looked for with every digit made `0` and everything else a space (0.5 µs for a
# 460-byte touchpoint; a regular expression took 3.7).
_DIGITS_AS_ZEROS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG_RUN = b"0" * 19


def load_json(data: bytes | str) -> Any:
    """Decoded JSON, every integer exact. The language is orjson's (UTF-8; no NaN, Infinity or
    number beyond a double): anything else raises orjson.JSONDecodeError."""
    decoded = orjson.loads(data)  # a str with a lone surrogate is refused here too
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_RUN not in raw.translate(_DIGITS_AS_ZEROS):
        return decoded
    try:
        return json.loads(raw)
    except RecursionError:  # deeper than the standard library goes (orjson: 1,024 levels)
        return decoded  # refused anyway: deeper than any depth limit


def parse_envelope(raw: Any) -> Envelope:
    """The envelope from decoded JSON, or InvalidInput naming the fields."""
    if not isinstance(raw, dict):
        raise InvalidInput("body", "a touchpoint is a JSON object")
    try:
        return Envelope.model_validate(raw)
    except ValidationError as error:
        raise invalid_from(error) from None


INT_RANGE = (-(2**63), 2**64 - 1)  # the integers orjson encodes (signed and unsigned 64 bits)


def _oversized(value: Any, path: str, depth: int, limits: Limits) -> tuple[str, str] | None:
    """The first place in a JSON value that is nested too deep, holds too long a string, or
    a number the store's JSON cannot hold (an integer beyond 64 bits)."""
    if isinstance(value, int) and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        return path, "a number beyond 64 bits"
    if isinstance(value, float) and not math.isfinite(value):
        return path, "not a finite number"  # orjson would store it as null
    if isinstance(value, str):
        if len(value) > limits.max_string_chars:
            return path, f"longer than {limits.max_string_chars} characters"
        return None
    if isinstance(value, dict | list):
        if depth > limits.max_data_depth:
            return path, f"nested deeper than {limits.max_data_depth} levels"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            found = _oversized(item, f"{path}.{key}", depth + 1, limits)
            if found:
                return found
    return None


def check_limits(envelope: Envelope, limits: Limits) -> None:
    """Refuse a touchpoint over the limits, naming the field (InvalidInput)."""
    if len(envelope.claims) > limits.max_claims:
        raise InvalidInput("claims", f"{len(envelope.claims)} claims; at most {limits.max_claims}")
    found = _held(envelope.data, "data", limits)
    # The actor's own fields beyond kind, id and name are stored as they came, like data.
    extra = envelope.actor.model_extra if envelope.actor is not None else None
    if extra and found is None:
        found = _held(extra, "actor", limits)
    for index, claim in enumerate(envelope.claims):
        path = f"claims.{index}.value"
        if found is None and not _within(_encoded(claim.value, path, limits), limits):
            found = _oversized(claim.value, path, 1, limits)
    if found:
        raise InvalidInput(*found)


def _held(value: Any, path: str, limits: Limits) -> tuple[str, str] | None:
    """The first place over the limits in a document (`data`, the actor's fields); raises
    InvalidInput when the whole of it is over `max_data_bytes` as JSON."""
    encoded = _encoded(value, path, limits)
    if len(encoded) > limits.max_data_bytes:
        raise InvalidInput(path, f"over {limits.max_data_bytes} bytes as JSON")
    return None if _within(encoded, limits) else _oversized(value, path, 1, limits)


def _encoded(value: Any, path: str, limits: Limits) -> bytes:
    """The value as the store will hold it (orjson); InvalidInput naming the place it cannot
    hold, for a value orjson refuses."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        found = _oversized(value, path, 1, limits) or (path, "cannot be stored as JSON")
        raise InvalidInput(*found) from None


def _within(encoded: bytes, limits: Limits) -> bool:
    """True when a value's JSON shows it cannot break the limits, so it need not be walked: no
    string is longer than the whole text, no value nests deeper than the number of brackets it
    has (counting those inside strings only overcounts), and no `null` is there (orjson writes
    NaN and the infinities as null)."""
    return (
        len(encoded) <= limits.max_string_chars
        and encoded.count(b"{") + encoded.count(b"[") <= limits.max_data_depth
        and b"null" not in encoded
    )


def implied_claims(kind: TouchpointType, data: dict[str, Any]) -> list[Claim]:
    """Claims a touchpoint makes by its type: a quote states a price until it expires."""
    if kind.name == "quote.given":
        until = data.get("valid_until")
        return [
            Claim(
                f"price:{data['sku']}",
                data["price"],
                datetime.fromisoformat(until) if until else None,
            )
        ]
    return []


def propose(
    envelope: Envelope,
    *,
    now: datetime,
    channels: frozenset[str] = BUILT_IN_CHANNELS,
    default_region: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Proposal:
    """Check an envelope against the registry and normalise it into a Proposal."""
    check_limits(envelope, limits)
    if envelope.source.channel not in channels:
        raise InvalidInput(
            "source.channel",
            f"unknown channel {envelope.source.channel!r}; known: {', '.join(sorted(channels))}",
        )
    kind = REGISTRY.get(envelope.type)
    if kind is None:
        raise InvalidInput("type", f"unknown touchpoint type {envelope.type!r}")
    if envelope.occurred_at > now + MAX_FUTURE:
        raise InvalidInput("occurred_at", "more than a day in the future")
    try:
        data = kind.data.model_validate(envelope.data).model_dump(mode="json", exclude_none=True)
    except ValidationError as error:
        raise invalid_from(error, "data.") from None

    ref = envelope.customer
    identities: list[str] = []
    if ref.email is not None:
        identities.append(identity_key("email", normalise_email(ref.email)))
    if ref.phone is not None:
        identities.append(identity_key("phone", normalise_phone(ref.phone, default_region)))
    if ref.account is not None:
        identities.append(identity_key("account", normalise_account(ref.account)))
    if not identities and ref.id is None:
        raise InvalidInput("customer", "give at least one of id, email, phone, account")

    claims = [Claim(c.subject, c.value, c.valid_until) for c in envelope.claims] + implied_claims(
        kind, data
    )
    supersedes = envelope.supersedes
    return Proposal(
        touchpoint_id=touchpoint_id_for(envelope.source.channel, envelope.source.id),
        kind=kind,
        channel=envelope.source.channel,
        source_id=envelope.source.id,
        occurred_at=envelope.occurred_at,
        customer_id=str(ref.id) if ref.id else None,
        identities=tuple(identities),
        actor=envelope.actor.model_dump(mode="json", exclude_none=True) if envelope.actor else None,
        data=data,
        claims=tuple(claims),
        in_reply_to=tuple(envelope.in_reply_to),
        supersedes=tuple(supersedes.subjects) if supersedes else (),
        correction_reason=supersedes.reason if supersedes else None,
        acknowledged=tuple(envelope.acknowledged_open_items),
    )
