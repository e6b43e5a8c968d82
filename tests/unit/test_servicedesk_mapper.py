"""The service desk mapper: ticket events to `service.opened`, `.updated`, `.resolved`."""

from __future__ import annotations

from typing import Any

import pytest

from adapters import servicedesk
from adapters.mapping import parse_payload
from hub.errors import InvalidInput
from tests.samples import payload


def mapped(raw: dict[str, Any]) -> list[dict[str, Any]]:
    event = parse_payload(servicedesk.TicketEvent, raw)
    return [e.model_dump(mode="json") for e in servicedesk.to_envelopes(event)]


def test_created_ticket_opens_a_repair_request_with_priority_for_the_requester() -> None:
    (opened,) = mapped(payload("servicedesk_ticket_created.json"))
    assert opened["type"] == "service.opened"
    assert opened["source"] == {"channel": "service", "id": "ticket:4711:opened"}
    assert opened["customer"]["email"] == "Greta.Novak@Example.com"
    assert opened["customer"]["phone"] is None  # "" from the desk is no phone
    assert opened["customer"]["account"] == "servicedesk:90210"
    assert opened["data"]["request_id"] == "4711"
    assert opened["data"]["kind"] == "repair"
    assert opened["data"]["priority"] == "high"
    assert opened["data"]["subject"] == "Kaffeemaschine tropft"


def test_updated_ticket_maps_to_update_with_status_note_and_assignee() -> None:
    opened, updated = mapped(payload("servicedesk_ticket_updated.json"))
    assert opened["source"]["id"] == "ticket:4711:opened"
    assert updated["type"] == "service.updated"
    assert updated["source"]["id"] == "ticket:4711:updated:2026-11-04T09:10:00+00:00"
    assert updated["data"]["status"] == "pending"
    assert updated["data"]["note"] == "Technician visit booked for Friday 8-12."
    assert updated["data"]["assignee"] == "agent-17"
    assert updated["actor"] == {"kind": "agent", "id": "agent-17", "name": "Zhang Min"}


def test_solved_ticket_resolves_the_request_with_the_last_comment() -> None:
    _, resolved = mapped(payload("servicedesk_ticket_solved.json"))
    assert resolved["type"] == "service.resolved"
    assert resolved["data"]["resolution"] == "Seal of the water tank replaced under warranty."
    assert resolved["occurred_at"] == "2026-11-06T11:30:00Z"


def test_update_to_closed_status_resolves_too() -> None:
    raw = payload("servicedesk_ticket_updated.json")
    raw["ticket"]["status"] = "closed"
    assert mapped(raw)[1]["type"] == "service.resolved"


@pytest.mark.parametrize(
    ("ticket_type", "tags", "kind"),
    [
        ("question", [], "question"),
        ("problem", [], "repair"),
        ("task", ["Complaint"], "complaint"),
        (None, [], "question"),
    ],
)
def test_request_kind_follows_type_and_complaint_tag(
    ticket_type: str | None, tags: list[str], kind: str
) -> None:
    raw = payload("servicedesk_ticket_created.json")
    raw["ticket"].update(type=ticket_type, tags=tags)
    assert mapped(raw)[0]["data"]["kind"] == kind


def test_ticket_without_requester_email_names_it() -> None:
    raw = payload("servicedesk_ticket_created.json")
    del raw["ticket"]["requester"]["email"]
    with pytest.raises(InvalidInput) as error:
        parse_payload(servicedesk.TicketEvent, raw)
    assert error.value.field == "ticket.requester.email"


def test_unknown_event_and_priority_are_named() -> None:
    raw = payload("servicedesk_ticket_created.json")
    raw["event"] = "ticket.deleted"
    raw["ticket"]["priority"] = "critical"
    with pytest.raises(InvalidInput) as error:
        parse_payload(servicedesk.TicketEvent, raw)
    assert sorted(f for f, _ in error.value.errors) == ["event", "ticket.priority"]
