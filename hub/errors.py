"""Domain errors, turned into problem documents at the API edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class HubError(Exception):
    """Base class of the errors the hub reports to its callers."""

    status = 400
    kind = "about:blank"
    title = "Bad request"

    def problem(self) -> dict[str, Any]:
        return {"type": self.kind, "title": self.title, "status": self.status, "detail": str(self)}


class InvalidInput(HubError):
    """A field of the input is malformed; nothing was recorded."""

    status = 422
    kind = "invalid-input"
    title = "Invalid input"

    def __init__(self, field: str, message: str, more: list[tuple[str, str]] | None = None):
        self.errors = [(field, message), *(more or [])]
        super().__init__("; ".join(f"{f}: {m}" for f, m in self.errors))
        self.field = field

    def problem(self) -> dict[str, Any]:
        doc = super().problem()
        doc["errors"] = [{"field": f, "message": m} for f, m in self.errors]
        return doc


@dataclass(frozen=True)
class Conflict:
    """One contradiction: which rule, about what, the earlier statement and the attempt."""

    rule: str
    subject: str
    attempted: Any
    detail: str
    earlier: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "subject": self.subject,
            "attempted": self.attempted,
            "earlier": self.earlier,
            "detail": self.detail,
        }


@dataclass
class ConflictError(HubError):
    """The touchpoint contradicts what the customer was told or what is known."""

    conflicts: list[Conflict] = field(default_factory=list)
    customer_id: str | None = None

    status = 409
    kind = "conflict"
    title = "Touchpoint contradicts the customer's history"

    def __str__(self) -> str:
        return "; ".join(c.detail for c in self.conflicts)

    def problem(self) -> dict[str, Any]:
        doc = super().problem()
        doc["customer_id"] = self.customer_id
        doc["conflicts"] = [c.as_dict() for c in self.conflicts]
        return doc


class AmbiguousIdentity(HubError):
    """The touchpoint's identities point at two or more customers."""

    status = 409
    kind = "ambiguous-identity"
    title = "Identities belong to different customers"

    def __init__(self, customers: dict[str, list[str]]):
        names = ", ".join(sorted(customers))
        super().__init__(
            f"the identities belong to customers {names}; name one in customer.id "
            "or merge them first"
        )
        self.customers = customers

    def problem(self) -> dict[str, Any]:
        doc = super().problem()
        doc["customers"] = [
            {"customer_id": cid, "identities": ids} for cid, ids in sorted(self.customers.items())
        ]
        return doc


class CustomerNotFound(HubError):
    """No customer has that id."""

    status = 404
    kind = "customer-not-found"
    title = "Customer not found"

    def __init__(self, customer_id: str, field: str | None = None):
        super().__init__(f"no customer {customer_id}")
        self.customer_id = customer_id
        self.field = field

    def problem(self) -> dict[str, Any]:
        doc = super().problem()
        if self.field:
            doc["errors"] = [{"field": self.field, "message": str(self)}]
        return doc


class CustomerErased(HubError):
    """The customer was erased: nothing more can be recorded for them."""

    status = 410
    kind = "customer-erased"
    title = "Customer erased"

    def __init__(self, customer_id: str):
        super().__init__(f"customer {customer_id} was erased; a new contact starts a new customer")
        self.customer_id = customer_id


class MergeRefused(HubError):
    """A merge or unmerge that cannot be done in the customers' present state."""

    status = 409
    kind = "merge-refused"
    title = "Merge refused"


class StoreUnavailable(HubError):
    """The store did not answer; the caller may retry."""

    status = 503
    kind = "store-unavailable"
    title = "Store unavailable"
