"""Call detail records from the telephony system mapped to `call.inbound` / `call.outbound`.

The call id is the source id (a CDR sent twice is recorded once). The customer is the caller
of an inbound call and the callee of an outbound one; the agent who took or made the call is
the actor. Disposition (answered, no answer, busy, voicemail, failed) is kept as sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.mapping import aware, build_envelope, dropping_none
from hub.envelope import Envelope

CHANNEL = "phone"

EXAMPLE: dict[str, Any] = {
    "call_id": "call-88121",
    "direction": "inbound",
    "caller": "+49 30 901820",
    "callee": "+49 800 5550100",
    "start": "2026-11-03T09:30:00Z",
    "duration": 240,
    "agent": {"id": "agent-17", "name": "Zhang Min"},
    "disposition": "answered",
    "callback_requested": True,
    "notes": "Asked where order A-17 is; wants a call back when it ships",
}


class Agent(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)


class CallRecord(BaseModel):
    """One call detail record; further fields are kept and ignored."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [EXAMPLE]})
    call_id: str = Field(min_length=1, max_length=200, description="the switch's unique id")
    direction: Literal["inbound", "outbound"]
    caller: str = Field(min_length=1, max_length=40, description="the calling number")
    callee: str = Field(min_length=1, max_length=40, description="the called number")
    start: datetime = Field(description="when the call started (UTC when no zone is given)")
    duration: int = Field(ge=0, description="seconds, ringing excluded")
    agent: Agent | None = None
    disposition: str = Field(default="answered", max_length=40)
    callback_requested: bool = False
    notes: str | None = Field(default=None, max_length=20_000)
    account: str | None = Field(default=None, description="the customer's account, system:id")

    @field_validator("direction", "disposition", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower().replace(" ", "_") if isinstance(value, str) else value


def to_envelopes(call: CallRecord) -> list[Envelope]:
    """The touchpoint of one call."""
    inbound = call.direction == "inbound"
    data: dict[str, Any] = dropping_none(
        summary=call.notes,
        duration_s=call.duration,
        disposition=call.disposition,
        line=call.callee if inbound else call.caller,
    )
    if inbound:
        data["callback_requested"] = call.callback_requested
    actor = (
        dropping_none(kind="agent", id=call.agent.id, name=call.agent.name) if call.agent else None
    )
    return [
        build_envelope(
            source={"channel": CHANNEL, "id": call.call_id},
            type="call.inbound" if inbound else "call.outbound",
            occurred_at=aware(call.start),
            customer=dropping_none(
                phone=call.caller if inbound else call.callee, account=call.account
            ),
            actor=actor,
            data=data,
        )
    ]
