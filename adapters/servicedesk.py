"""Service desk ticket events (created, updated, solved) mapped to service touchpoints.

Every event maps to the ticket's `service.opened` (source id `ticket:<id>:opened`, so a
repeat is a duplicate and a missed `ticket.created` is made good by the next event), then:
an update to `service.updated` and a solved ticket (event `ticket.solved`, or a status
`solved` / `closed`) to `service.resolved`, each keyed by the ticket's `updated_at`, so a
redelivered event is recorded once and a reopened ticket solved again is recorded again.
The request kind comes from `kind` if the desk sends one, else from the ticket's type
(`incident` and `problem` are repairs) and a `complaint` tag.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.mapping import aware, blank_to_none, build_envelope, dropping_none
from hub.envelope import Envelope

CHANNEL = "service"
ACTOR = {"kind": "system", "id": "servicedesk"}

EXAMPLE: dict[str, Any] = {
    "event": "ticket.created",
    "ticket": {
        "id": 4711,
        "subject": "Coffee machine leaks water",
        "description": "Since Monday the machine leaks under the tank.",
        "status": "new",
        "priority": "high",
        "type": "incident",
        "tags": ["warranty"],
        "requester": {"id": 90210, "email": "Li.Wei@Example.com", "name": "Li Wei"},
        "assignee": {"id": "agent-17", "name": "Zhang Min"},
        "created_at": "2026-11-03T10:00:00Z",
        "updated_at": "2026-11-03T10:00:00Z",
    },
}

Kind = Literal["repair", "complaint", "question"]
KINDS: dict[str, Kind] = {"incident": "repair", "problem": "repair", "question": "question"}


class Person(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int | str | None = None
    email: str | None = None
    name: str | None = None
    phone: str | None = None

    @field_validator("email", "phone", "name", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return blank_to_none(value)


class Requester(Person):
    email: str = Field(min_length=3, max_length=320)


class Comment(BaseModel):
    model_config = ConfigDict(extra="allow")
    body: str = Field(max_length=20_000)
    public: bool = True


class Ticket(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int | str
    subject: str | None = Field(default=None, max_length=20_000)
    description: str | None = Field(default=None, max_length=20_000)
    status: str = "new"
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    type: str | None = None
    kind: Kind | None = Field(default=None, description="the hub's request kind, if known")
    tags: list[str] = []
    requester: Requester
    assignee: Person | None = None
    created_at: datetime
    updated_at: datetime | None = None
    latest_comment: Comment | None = None

    @field_validator("status", "priority", "type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class TicketEvent(BaseModel):
    """One service desk webhook: the event and the ticket as it is now."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [EXAMPLE]})
    event: Literal["ticket.created", "ticket.updated", "ticket.solved"]
    ticket: Ticket


def request_kind(ticket: Ticket) -> Kind:
    if ticket.kind is not None:
        return ticket.kind
    if "complaint" in (tag.lower() for tag in ticket.tags):
        return "complaint"
    return KINDS.get(ticket.type or "", "question")


def _assignee(ticket: Ticket) -> dict[str, Any] | None:
    if ticket.assignee is None or ticket.assignee.id is None:
        return None
    return dropping_none(kind="agent", id=str(ticket.assignee.id), name=ticket.assignee.name)


def to_envelopes(event: TicketEvent) -> list[Envelope]:
    """The touchpoints of one ticket event: the request, and the update or the solution."""
    ticket = event.ticket
    request_id = str(ticket.id)
    requester = ticket.requester
    customer = dropping_none(
        email=requester.email,
        phone=requester.phone,
        account=f"servicedesk:{requester.id}" if requester.id is not None else None,
    )
    opened = build_envelope(
        source={"channel": CHANNEL, "id": f"ticket:{request_id}:opened"},
        type="service.opened",
        occurred_at=aware(ticket.created_at),
        customer=customer,
        actor=ACTOR,
        data=dropping_none(
            request_id=request_id,
            subject=ticket.subject,
            description=ticket.description,
            kind=request_kind(ticket),
            priority=ticket.priority or "normal",
            tags=ticket.tags or None,
        ),
    )
    if event.event == "ticket.created":
        return [opened]
    changed_at = aware(ticket.updated_at or ticket.created_at)
    note = ticket.latest_comment.body if ticket.latest_comment else None
    assignee = _assignee(ticket)
    solved = event.event == "ticket.solved" or ticket.status in ("solved", "closed")
    kind = "resolved" if solved else "updated"
    data = (
        dropping_none(request_id=request_id, resolution=note, status=ticket.status)
        if solved
        else dropping_none(
            request_id=request_id,
            status=ticket.status,
            note=note,
            priority=ticket.priority,
            assignee=assignee["id"] if assignee else None,
        )
    )
    change = build_envelope(
        source={"channel": CHANNEL, "id": f"ticket:{request_id}:{kind}:{changed_at.isoformat()}"},
        type=f"service.{kind}",
        occurred_at=changed_at,
        customer=customer,
        actor=assignee or ACTOR,
        data=data,
    )
    return [opened, change]
