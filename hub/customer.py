"""The customer aggregate, its touchpoint events (one class per registered type), and the
small aggregates that record rejected attempts and merge suggestions."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any, ClassVar

from eventsourcing.domain import Aggregate, event
from eventsourcing.domain import Snapshot as LibrarySnapshot

from hub.state import CustomerState
from hub.touchpoints import REGISTRY, TouchpointType


class Customer(Aggregate):
    """One customer's stream: every touchpoint, merge and unmerge, in recorded order."""

    class Registered(Aggregate.Created):
        pass

    def __init__(self) -> None:
        self.state = CustomerState()
        self.merged_into: str | None = None
        self.merged_from: list[str] = []
        self.erased = False
        # (version, hash) of the stream's last stored event: where the next event's chain
        # link points (hub/codec.py). Not state of the domain: kept by the application.
        self.chain_head: tuple[int, str] | None = None

    class Snapshot(LibrarySnapshot):
        """The customer at one version, so a long stream loads from here, not from version 1.

        Stored sealed under the customer's key as a whole (hub/codec.py), like the personal
        fields of its events, and deleted on erasure.
        """

        @classmethod
        def take(cls, aggregate: Any) -> Customer.Snapshot:
            snapshot = super().take(aggregate)
            snapshot.state["state"] = aggregate.state.to_doc()
            return snapshot

        def mutate(self, _: None) -> Customer:
            customer = super().mutate(None)
            assert isinstance(customer, Customer)
            doc = customer.__dict__
            for name in ("_created_on", "_modified_on"):
                if isinstance(doc.get(name), str):
                    doc[name] = datetime.fromisoformat(doc[name])
            customer.state = CustomerState.from_doc(doc["state"])
            head = doc.get("chain_head")
            customer.chain_head = (head[0], head[1]) if head else None
            return customer

    def record(self, kind: TouchpointType, **fields: Any) -> Touchpoint:
        """Append a touchpoint of the given type; returns the pending event.

        What the library's `trigger_event` does, with the event built the way the mapper
        builds events it reads (its fields set at once, not one frozen-dataclass field at a
        time): `fields` are always `Proposal.event_fields`, so there is nothing to check.
        """
        cls = EVENT_CLASSES[kind.name]
        touchpoint = object.__new__(cls)
        fields.update(
            originator_id=self.id,
            originator_version=self.version + 1,
            timestamp=cls.create_timestamp(),
        )
        object.__setattr__(touchpoint, "__dict__", fields)
        touchpoint.mutate(self)
        self._pending_events.append(touchpoint)
        return touchpoint

    @event("Absorbed")
    def absorb(self, other_id: str) -> None:
        """Another customer was merged into this one."""
        self.merged_from.append(other_id)

    @event("MergedInto")
    def merge_into(self, survivor_id: str) -> None:
        """This customer was merged into the survivor; its identities now route there."""
        self.merged_into = survivor_id

    @event("Released")
    def release(self, other_id: str) -> None:
        """A merge into this customer was undone."""
        self.merged_from.remove(other_id)

    @event("Erased")
    def erase(self) -> None:
        """The customer's personal data was shredded; the stream stays, closed."""
        self.erased = True

    @event("Unmerged")
    def unmerge(self, survivor_id: str) -> None:
        """This customer stands on its own again."""
        self.merged_into = None


class Touchpoint(Customer.Event):
    """Base of every touchpoint event; the concrete class names the type."""

    TYPE: ClassVar[str] = ""

    touchpoint_id: str
    channel: str
    source_id: str
    occurred_at: str
    actor: dict[str, Any] | None
    data: dict[str, Any]
    claims: list[dict[str, Any]]
    in_reply_to: list[str]
    supersedes: list[str]
    correction_reason: str | None
    acknowledged: list[str]
    identities: list[str]
    new_identities: list[str]
    mode: str
    detected_conflicts: list[dict[str, Any]]

    def apply(self, aggregate: Customer) -> None:
        aggregate.state.apply_touchpoint(self.record())

    def record(self) -> dict[str, Any]:
        """The touchpoint as a plain record, with its type and `recorded_at`."""
        fields = dict(vars(self))
        del fields["originator_id"], fields["timestamp"]
        fields["type"] = self.TYPE
        fields["recorded_at"] = self.timestamp.isoformat()
        return fields


def _touchpoint_class(kind: TouchpointType) -> type[Touchpoint]:
    cls = type(kind.event_name, (Touchpoint,), {"TYPE": kind.name, "__module__": __name__})
    cls.__qualname__ = kind.event_name
    return cls


EVENT_CLASSES: dict[str, type[Touchpoint]] = {
    name: _touchpoint_class(kind) for name, kind in REGISTRY.items()
}
# Stored topics name these classes by module and name, so they must be module attributes.
_module = sys.modules[__name__]
for _cls in EVENT_CLASSES.values():
    setattr(_module, _cls.__name__, _cls)


class RejectedAttempt(Aggregate, created_event_name="Recorded"):
    """A touchpoint the rules turned away: kept so auditors see what was blocked."""

    def __init__(
        self,
        customer_id: str | None,
        touchpoint: dict[str, Any],
        reason: str,
        conflicts: list[dict[str, Any]],
    ) -> None:
        self.customer_id = customer_id
        self.touchpoint = touchpoint
        self.reason = reason
        self.conflicts = conflicts


class MergeSuggestion(Aggregate, created_event_name="Suggested"):
    """Identities of one touchpoint pointed at several customers: they may be one person."""

    def __init__(self, customers: dict[str, list[str]], touchpoint_id: str, picked: str | None):
        self.customers = customers
        self.touchpoint_id = touchpoint_id
        self.picked = picked
