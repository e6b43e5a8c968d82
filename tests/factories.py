"""Envelopes for tests: a valid touchpoint with any field overridden."""

from __future__ import annotations

import itertools
from typing import Any

from hub.envelope import Envelope, parse_envelope

_ids = itertools.count(1)


def raw_touchpoint(**overrides: Any) -> dict[str, Any]:
    """A valid envelope as decoded JSON; each call gets a new source id unless one is given."""
    doc: dict[str, Any] = {
        "source": {"channel": "phone", "id": f"call-{next(_ids)}"},
        "type": "call.outbound",
        "occurred_at": "2026-11-03T09:30:00Z",
        "customer": {"email": "li.wei@example.com"},
        "actor": {"kind": "agent", "id": "agent-17", "name": "Zhang Min"},
        "data": {"summary": "Talked to the customer", "duration_s": 240},
    }
    doc.update(overrides)
    return doc


def touchpoint(**overrides: Any) -> Envelope:
    return parse_envelope(raw_touchpoint(**overrides))


def money(amount: str, currency: str = "EUR") -> dict[str, str]:
    return {"amount": amount, "currency": currency}
