"""Shop order webhooks (shaped like the common shop platforms') mapped to order touchpoints.

Every order webhook (`orders/create`, `orders/updated`, `orders/paid`, …) maps to the
order's `order.placed` (source id `order:<id>:placed`, so a repeat is a duplicate and a
missed create is made good by the next update) and, when the order is past `placed`, an
`order.status_changed` (source id `order:<id>:status:<status>`): each status is recorded
once however often the shop repeats it. The status is read off the platform's fields:

| shop fields | status |
| --- | --- |
| `cancelled_at` set, or `financial_status` `voided` | `cancelled` |
| `fulfillment_status` `restocked`, or `financial_status` `refunded` | `returned` |
| a fulfillment with `shipment_status` `delivered` | `delivered` |
| `fulfillment_status` `fulfilled` | `shipped` |
| `financial_status` `paid` or `partially_refunded` | `paid` |
| otherwise (`pending`, `authorized`, …) | `placed` |
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapters.mapping import aware, blank_to_none, build_envelope, dropping_none
from hub.envelope import Envelope
from hub.errors import InvalidInput
from hub.touchpoints import DecimalString

CHANNEL = "web"
ACTOR = {"kind": "system", "id": "shop"}

EXAMPLE: dict[str, Any] = {
    "topic": "orders/create",
    "id": 5521847363,
    "name": "#1042",
    "email": "Li.Wei@Example.com",
    "phone": "+86 138 0013 8000",
    "customer": {"id": 7781, "first_name": "Li", "last_name": "Wei"},
    "created_at": "2026-11-03T09:00:00+01:00",
    "updated_at": "2026-11-03T09:00:05+01:00",
    "currency": "EUR",
    "total_price": "59.70",
    "financial_status": "paid",
    "fulfillment_status": None,
    "line_items": [
        {"id": 1, "sku": "MUG-BLUE", "title": "Blue mug", "quantity": 3, "price": "19.90"}
    ],
    "shipping_address": {
        "name": "Li Wei",
        "address1": "Lindenweg 4",
        "city": "Berlin",
        "zip": "10115",
        "country_code": "DE",
    },
}


Topic = Literal[
    "orders/create", "orders/updated", "orders/paid", "orders/fulfilled", "orders/cancelled"
]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _blanks(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: blank_to_none(v) for k, v in value.items()}
        return value


class LineItem(_Lenient):
    id: int | str | None = None
    sku: str | None = None
    variant_id: int | str | None = None
    title: str | None = None
    quantity: int = Field(default=1, ge=1)
    price: DecimalString | None = None

    @model_validator(mode="after")
    def _named(self) -> LineItem:
        if self.sku is None and self.variant_id is None and self.id is None:
            raise ValueError("a line item needs a sku, variant_id or id")
        return self


class Fulfillment(_Lenient):
    shipment_status: str | None = None


class ShopCustomer(_Lenient):
    id: int | str | None = None
    email: str | None = None
    phone: str | None = None


class OrderWebhook(_Lenient):
    """An order webhook as the shop sends it; further fields are kept and ignored."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [EXAMPLE]})
    topic: Topic = Field(
        default="orders/create",
        description="the shop's event; every topic maps the same way, by the order's fields",
    )
    id: int | str
    name: str | None = Field(default=None, description="the order number shown to customers")
    email: str | None = None
    phone: str | None = None
    customer: ShopCustomer | None = None
    created_at: datetime
    updated_at: datetime | None = None
    cancelled_at: datetime | None = None
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    total_price: DecimalString
    financial_status: str | None = None
    fulfillment_status: str | None = None
    line_items: list[LineItem] = []
    fulfillments: list[Fulfillment] = []
    shipping_address: dict[str, Any] | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: int | str) -> int | str:
        if not str(value).strip():
            raise ValueError("the order id is empty")
        return value


def order_status(order: OrderWebhook) -> str:
    """The hub's order status for the shop's financial and fulfilment fields."""
    financial = (order.financial_status or "").lower()
    fulfillment = (order.fulfillment_status or "").lower()
    if order.cancelled_at is not None or financial == "voided":
        return "cancelled"
    if fulfillment == "restocked" or financial == "refunded":
        return "returned"
    if any((f.shipment_status or "").lower() == "delivered" for f in order.fulfillments):
        return "delivered"
    if fulfillment == "fulfilled":
        return "shipped"
    if financial in ("paid", "partially_refunded"):
        return "paid"
    return "placed"


def _customer(order: OrderWebhook) -> dict[str, Any]:
    shop_customer = order.customer or ShopCustomer()
    ref = dropping_none(
        email=order.email or shop_customer.email,
        phone=order.phone or shop_customer.phone,
        account=f"shop:{shop_customer.id}" if shop_customer.id is not None else None,
    )
    if not ref:
        raise InvalidInput("email", "the order names no customer: give email, phone or customer.id")
    return ref


def _money(amount: str, currency: str) -> dict[str, str]:
    return {"amount": amount, "currency": currency}


def to_envelopes(order: OrderWebhook) -> list[Envelope]:
    """The touchpoints of one order webhook: the order, and its status when past `placed`."""
    order_id = str(order.id)
    customer = _customer(order)
    items = [
        dropping_none(
            sku=str(item.sku or item.variant_id or item.id),
            qty=item.quantity,
            price=_money(item.price, order.currency) if item.price is not None else None,
            title=item.title,
        )
        for item in order.line_items
    ]
    placed = build_envelope(
        source={"channel": CHANNEL, "id": f"order:{order_id}:placed"},
        type="order.placed",
        occurred_at=aware(order.created_at),
        customer=customer,
        actor=ACTOR,
        data=dropping_none(
            order_id=order_id,
            order_name=order.name,
            total=_money(order.total_price, order.currency),
            items=items,
            shipping_address=order.shipping_address,
        ),
    )
    status = order_status(order)
    if status == "placed":
        return [placed]
    changed_at = order.cancelled_at if status == "cancelled" and order.cancelled_at else None
    changed = build_envelope(
        source={"channel": CHANNEL, "id": f"order:{order_id}:status:{status}"},
        type="order.status_changed",
        occurred_at=aware(changed_at or order.updated_at or order.created_at),
        customer=customer,
        actor=ACTOR,
        data=dropping_none(
            order_id=order_id,
            status=status,
            financial_status=order.financial_status,
            fulfillment_status=order.fulfillment_status,
        ),
    )
    return [placed, changed]
