"""One attempt at deciding a batch of touchpoints: the customers it loaded, what it decided
for each item, and the aggregates and key rows it will save in one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hub.customer import Customer, MergeSuggestion, RejectedAttempt, Touchpoint
from hub.errors import CustomerNotFound
from hub.state import CustomerState
from hub.store import KeyRow
from hub.streams import CustomerStreams


@dataclass
class Pending:
    """A touchpoint this batch decided to append (recorded once the batch commits)."""

    touchpoint: Touchpoint | None  # None: a duplicate of an earlier item of this batch
    customer_id: str
    touchpoint_id: str
    source_key: str
    detected: list[dict[str, Any]]


@dataclass(frozen=True)
class Earlier:
    """A source key already in the store: the touchpoint recorded for it the first time."""

    customer_id: str
    version: int
    touchpoint_id: str


class DecisionBatch:
    """The aggregates, key rows and decisions of one attempt at committing a batch."""

    def __init__(
        self,
        hub: CustomerStreams,
        owners: dict[str, tuple[str, int | None]],
        heads: dict[str, int] | None = None,
    ):
        self.hub = hub
        self.owners = {key: owner for key, (owner, _) in owners.items()}
        self.heads = heads or {}  # customers' versions in the store, read with their keys
        self.customers: dict[str, Customer] = {}
        self.created: list[Any] = []
        self.keys: list[KeyRow] = []
        self.sources: dict[str, Pending] = {}
        self.new: dict[str, bytes] = {}  # customers created by this batch, and their keys

    def customer(self, customer_id: str, field: str | None = None) -> Customer:
        if customer_id not in self.customers:
            loaded = self.hub.load_customers([customer_id])
            if customer_id not in loaded:
                raise CustomerNotFound(customer_id, field)
            self.customers.update(loaded)
        return self.customers[customer_id]

    def prefetch(self, customer_ids: Iterable[str]) -> None:
        """Load the customers not loaded yet, and those merged with them, a query per round."""
        wanted = {c for c in customer_ids if c not in self.customers}
        while wanted:
            loaded = self.hub.load_customers(wanted, self.heads)
            self.customers.update(loaded)
            wanted = {
                other
                for customer in loaded.values()
                for other in (customer.merged_into, *customer.merged_from)
                if other is not None and other not in self.customers
            }

    def survivor(self, customer_id: str, field: str | None = None) -> Customer:
        """The customer a touchpoint for `customer_id` goes to, following merges."""
        return self.customers[self.survivor_id(customer_id, field)]

    def survivor_id(self, customer_id: str, field: str | None = None) -> str:
        """The id of `survivor(customer_id)` (ids as text are what the batch keys by)."""
        customer = self.customer(customer_id, field)
        seen = {customer_id}
        while customer.merged_into is not None and customer.merged_into not in seen:
            customer_id = customer.merged_into
            seen.add(customer_id)
            customer = self.customer(customer_id)
        return customer_id

    def state_of(self, customer: Customer) -> CustomerState:
        """The customer's state with every customer merged into it folded in."""
        if not customer.merged_from:
            return customer.state
        combined = CustomerState()
        combined.absorb(customer.state)
        for other_id in customer.merged_from:
            combined.absorb(self.customer(other_id).state)
        return combined

    def release(self) -> None:
        """Hand the customers back to the cache: committed, or only read."""
        self.hub.cache.put(
            (cid, c) for cid, c in self.customers.items() if not c.pending_events and not c.erased
        )

    def aggregates(self) -> list[Any]:
        """The aggregates with events to save (the library inspects each one it is given)."""
        return [a for a in (*self.customers.values(), *self.created) if a.pending_events]

    def key_owners(self) -> set[str]:
        """The customers already in the store whose keys the pending events are sealed with."""
        owners = {cid for cid, c in self.customers.items() if c.pending_events}
        for created in self.created:
            if isinstance(created, RejectedAttempt) and created.customer_id:
                owners.add(created.customer_id)
            elif isinstance(created, MergeSuggestion):
                owners.update(created.customers)
        return owners - self.new.keys()
