"""Build a customer's state from envelopes, exactly as recording them would, without a store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hub.envelope import Proposal, parse_envelope, propose
from hub.rules import conflicts_of
from hub.state import CustomerState
from tests.factories import raw_touchpoint

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def proposal(**overrides: Any) -> Proposal:
    return propose(parse_envelope(raw_touchpoint(**overrides)), now=NOW)


def state_after(*proposals: Proposal) -> CustomerState:
    """The state after recording each proposal in order (in record mode: no rule applied)."""
    state = CustomerState()
    for number, p in enumerate(proposals):
        record = {
            **p.event_fields(),
            "type": p.type,
            "recorded_at": f"2026-11-19T00:00:{number:02d}",
        }
        state.apply_touchpoint(record)
    return state


def rules_of(state: CustomerState, p: Proposal) -> list[str]:
    return [conflict.rule for conflict in conflicts_of(state, p)]
