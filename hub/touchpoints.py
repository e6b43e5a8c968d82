"""The registry of touchpoint types: each wire type, its event class name and its `data` schema."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _decimal_string(value: str) -> str:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return value


DecimalString = Annotated[str, Field(max_length=40), AfterValidator(_decimal_string)]


class Money(BaseModel):
    """An amount as a decimal string, with its ISO 4217 currency."""

    model_config = ConfigDict(extra="forbid")
    amount: DecimalString
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class Data(BaseModel):
    """Base of every `data` schema: the named fields are checked, further fields are kept."""

    model_config = ConfigDict(extra="allow")


Text = Annotated[str, Field(max_length=20_000)]
Id = Annotated[str, Field(min_length=1, max_length=200)]


class OrderItem(Data):
    sku: Id
    qty: int = Field(default=1, ge=1)
    price: Money | None = None


class OrderPlaced(Data):
    order_id: Id
    total: Money
    items: list[OrderItem] = Field(default_factory=list)
    shipping_address: dict[str, Any] | str | None = None


OrderStatus = Literal["placed", "paid", "shipped", "delivered", "cancelled", "returned"]


class OrderStatusChanged(Data):
    order_id: Id
    status: OrderStatus


class QuoteGiven(Data):
    sku: Id
    price: Money
    valid_until: datetime | None = None


class PromiseMade(Data):
    promise_id: Id
    what: Text
    due: datetime | None = None


class PromiseKept(Data):
    promise_id: Id


class ServiceOpened(Data):
    request_id: Id
    subject: Text | None = None
    kind: Literal["repair", "complaint", "question"] = "question"
    priority: Literal["low", "normal", "high", "urgent"] = "normal"


class ServiceUpdated(Data):
    request_id: Id
    status: Id
    note: Text | None = None


class ServiceVisitScheduled(Data):
    request_id: Id
    visit_date: date


class ServiceResolved(Data):
    request_id: Id
    resolution: Text | None = None


class EmailReceived(Data):
    message_id: Id | None = None
    subject: Text | None = None
    wants_reply: bool = True


class EmailSent(Data):
    message_id: Id | None = None
    subject: Text | None = None
    category: Literal["personal", "marketing"] = "personal"


class CallInbound(Data):
    summary: Text | None = None
    duration_s: int | None = Field(default=None, ge=0)
    callback_requested: bool = False


class CallOutbound(Data):
    summary: Text | None = None
    duration_s: int | None = Field(default=None, ge=0)


class WebFormSubmitted(Data):
    form: Id
    fields: dict[str, Any] = Field(default_factory=dict)
    wants_reply: bool = True


class WebRegistered(Data):
    event_id: Id
    event_name: Text | None = None
    starts_at: datetime | None = None


class RegistrationConfirmed(Data):
    event_id: Id


class SalesContacted(Data):
    summary: Text | None = None
    product: Id | None = None


class MarketingSent(Data):
    campaign: Id
    asset: Id


class ConsentChanged(Data):
    purpose: Id
    granted: bool


class ProfileUpdated(Data):
    name: Text | None = None
    address: dict[str, Any] | str | None = None


class TextEntry(Data):
    text: Text


@dataclass(frozen=True)
class TouchpointType:
    """One registered touchpoint type.

    `fact` marks types sent by a system of record; `marketing` a type that is marketing by
    nature; `outbound` a personal contact made by the company, which answers open messages;
    `selling` a type the open-complaint rule holds back.
    """

    name: str
    event_name: str
    data: type[Data]
    fact: bool = False
    marketing: bool = False
    outbound: bool = False
    selling: bool = False


REGISTRY: dict[str, TouchpointType] = {
    t.name: t
    for t in [
        TouchpointType("order.placed", "OrderPlaced", OrderPlaced, fact=True),
        TouchpointType("order.status_changed", "OrderStatusChanged", OrderStatusChanged, fact=True),
        TouchpointType("web.form_submitted", "WebFormSubmitted", WebFormSubmitted),
        TouchpointType("web.registered", "WebRegistered", WebRegistered),
        TouchpointType("registration.confirmed", "RegistrationConfirmed", RegistrationConfirmed),
        TouchpointType("email.received", "EmailReceived", EmailReceived),
        TouchpointType("email.sent", "EmailSent", EmailSent, outbound=True),
        TouchpointType("call.inbound", "CallTaken", CallInbound),
        TouchpointType("call.outbound", "CallMade", CallOutbound, outbound=True),
        TouchpointType("chat.message", "ChatMessagePosted", TextEntry),
        TouchpointType("service.opened", "ServiceRequestOpened", ServiceOpened, fact=True),
        TouchpointType("service.updated", "ServiceRequestUpdated", ServiceUpdated, fact=True),
        TouchpointType(
            "service.visit_scheduled", "ServiceVisitScheduled", ServiceVisitScheduled, fact=True
        ),
        TouchpointType("service.resolved", "ServiceRequestResolved", ServiceResolved, fact=True),
        TouchpointType("quote.given", "QuoteGiven", QuoteGiven, outbound=True, selling=True),
        TouchpointType(
            "sales.contacted", "SalesContactMade", SalesContacted, outbound=True, selling=True
        ),
        TouchpointType("promise.made", "PromiseMade", PromiseMade, outbound=True),
        TouchpointType("promise.kept", "PromiseKept", PromiseKept),
        TouchpointType("marketing.sent", "MarketingSent", MarketingSent, marketing=True),
        TouchpointType("consent.changed", "ConsentChanged", ConsentChanged),
        TouchpointType("profile.updated", "ProfileUpdated", ProfileUpdated),
        TouchpointType("feedback.given", "FeedbackGiven", TextEntry),
        TouchpointType("note.added", "NoteAdded", TextEntry),
    ]
}
