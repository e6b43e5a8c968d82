"""The telephony mapper: call detail records to `call.inbound` / `call.outbound`."""

from __future__ import annotations

from typing import Any

import pytest

from adapters import telephony
from adapters.mapping import parse_payload
from hub.errors import InvalidInput
from tests.samples import payload


def mapped(raw: dict[str, Any]) -> dict[str, Any]:
    (envelope,) = telephony.to_envelopes(parse_payload(telephony.CallRecord, raw))
    return envelope.model_dump(mode="json")


def test_inbound_call_is_taken_from_the_caller_with_agent_and_callback() -> None:
    call = mapped(payload("telephony_inbound_callback.json"))
    assert call["type"] == "call.inbound"
    assert call["source"] == {"channel": "phone", "id": "1730623800.88121"}
    assert call["customer"]["phone"] == "+49 30 901820"
    assert call["actor"] == {"kind": "agent", "id": "agent-17", "name": "Zhang Min"}
    assert call["data"]["duration_s"] == 240
    assert call["data"]["callback_requested"] is True
    assert call["data"]["disposition"] == "answered"
    assert call["data"]["summary"].startswith("Coffee machine leaks")


def test_outbound_call_is_made_to_the_callee_and_naive_start_is_utc() -> None:
    call = mapped(payload("telephony_outbound.json"))
    assert call["type"] == "call.outbound"
    assert call["customer"]["phone"] == "+4930901820"
    assert call["occurred_at"] == "2026-11-04T09:05:00Z"
    assert "callback_requested" not in call["data"]


def test_missed_call_keeps_its_disposition_and_has_no_actor() -> None:
    call = mapped(payload("telephony_missed.json"))
    assert call["data"]["disposition"] == "no_answer"
    assert call["actor"] is None
    assert call["data"]["callback_requested"] is False


@pytest.mark.parametrize("missing", ["call_id", "caller", "start", "direction"])
def test_record_missing_a_field_names_it(missing: str) -> None:
    raw = payload("telephony_inbound_callback.json")
    del raw[missing]
    with pytest.raises(InvalidInput) as error:
        parse_payload(telephony.CallRecord, raw)
    assert error.value.field == missing


def test_negative_duration_and_unknown_direction_are_both_named() -> None:
    raw = {**payload("telephony_inbound_callback.json"), "duration": -5, "direction": "sideways"}
    with pytest.raises(InvalidInput) as error:
        parse_payload(telephony.CallRecord, raw)
    assert sorted(f for f, _ in error.value.errors) == ["direction", "duration"]
