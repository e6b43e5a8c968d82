"""What every webhook mapper shares: reading a payload and building envelopes, with errors
that name the offending field (InvalidInput), so a payload that cannot be mapped is a 422."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from hub.envelope import Envelope, invalid_from
from hub.errors import InvalidInput
from hub.touchpoints import REGISTRY

P = TypeVar("P", bound=BaseModel)


def parse_payload(model: type[P], raw: Any) -> P:
    """The channel's payload as its model, or InvalidInput naming every field at fault."""
    if not isinstance(raw, dict):
        raise InvalidInput("body", "the payload is a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise invalid_from(error) from None


def build_envelope(**fields: Any) -> Envelope:
    """An envelope from mapped fields, its `data` checked against the type's schema, so a
    value the channel gave wrongly is an InvalidInput before anything is recorded."""
    try:
        envelope = Envelope.model_validate(fields)
    except ValidationError as error:
        raise invalid_from(error, "touchpoint.") from None
    kind = REGISTRY.get(envelope.type)
    try:
        if kind is not None:
            kind.data.model_validate(envelope.data)
    except ValidationError as error:
        raise invalid_from(error, "touchpoint.data.") from None
    return envelope


def aware(moment: datetime) -> datetime:
    """Channels that omit the zone mean UTC (CDR exports, `-0000` mail dates)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def blank_to_none(value: Any) -> Any:
    """Shop and desk platforms send "" for a field they do not have."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


def dropping_none(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}
