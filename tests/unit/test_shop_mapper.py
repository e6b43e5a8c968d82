"""The shop mapper: order webhooks to `order.placed` and `order.status_changed`."""

from __future__ import annotations

import pytest

from adapters import shop
from adapters.mapping import parse_payload
from hub.errors import InvalidInput
from tests.samples import payload


def mapped(name: str, **changes: object) -> list[dict[str, object]]:
    order = parse_payload(shop.OrderWebhook, {**payload(name), **changes})
    return [e.model_dump(mode="json") for e in shop.to_envelopes(order)]


def test_created_order_maps_to_order_placed_with_total_items_and_address() -> None:
    (placed,) = mapped("shop_order_created.json")
    assert placed["type"] == "order.placed"
    assert placed["source"] == {"channel": "web", "id": "order:5521847363:placed"}
    assert placed["occurred_at"] == "2026-10-28T14:05:31+01:00"
    assert placed["customer"]["email"] == "Greta.Novak@Example.com"
    assert placed["customer"]["account"] == "shop:7781"
    data = placed["data"]
    assert data["order_id"] == "5521847363"
    assert data["order_name"] == "#1042"
    assert data["total"] == {"amount": "59.65", "currency": "EUR"}
    assert data["items"][0] == {
        "sku": "MUG-BLUE-350",
        "qty": 3,
        "price": {"amount": "14.90", "currency": "EUR"},
        "title": "Stoneware mug, blue",
    }
    assert data["items"][1]["sku"] == "44120999"  # no sku: the variant names the item
    assert data["shipping_address"]["city"] == "Berlin"


def test_fulfilled_update_maps_to_placed_and_shipped_keyed_by_status() -> None:
    placed, shipped = mapped("shop_order_updated_shipped.json")
    assert placed["source"]["id"] == "order:5521847363:placed"
    assert shipped["type"] == "order.status_changed"
    assert shipped["source"]["id"] == "order:5521847363:status:shipped"
    assert shipped["data"]["status"] == "shipped"
    assert shipped["occurred_at"] == "2026-10-30T08:12:00+01:00"


def test_cancelled_order_is_cancelled_at_its_cancellation_time() -> None:
    _, cancelled = mapped("shop_order_cancelled.json")
    assert cancelled["data"]["status"] == "cancelled"
    assert cancelled["occurred_at"] == "2026-10-29T09:59:58+01:00"


@pytest.mark.parametrize(
    ("financial", "fulfillment", "shipment", "status"),
    [
        ("pending", None, None, None),
        ("authorized", None, None, None),
        ("paid", None, None, "paid"),
        ("paid", "partial", None, "paid"),
        ("paid", "fulfilled", "in_transit", "shipped"),
        ("paid", "fulfilled", "delivered", "delivered"),
        ("refunded", "fulfilled", "delivered", "returned"),
        ("voided", None, None, "cancelled"),
    ],
)
def test_status_is_read_off_financial_and_fulfilment_fields(
    financial: str, fulfillment: str | None, shipment: str | None, status: str | None
) -> None:
    envelopes = mapped(
        "shop_order_created.json",
        financial_status=financial,
        fulfillment_status=fulfillment,
        fulfillments=[{"shipment_status": shipment}] if shipment else [],
    )
    statuses = [e["data"]["status"] for e in envelopes if e["type"] == "order.status_changed"]
    assert statuses == ([status] if status else [])


def test_order_without_total_price_names_the_missing_field() -> None:
    raw = payload("shop_order_created.json")
    del raw["total_price"]
    with pytest.raises(InvalidInput) as error:
        parse_payload(shop.OrderWebhook, raw)
    assert [f for f, _ in error.value.errors] == ["total_price"]


def test_malformed_line_item_price_names_its_path() -> None:
    raw = payload("shop_order_created.json")
    raw["line_items"][1]["price"] = "ten euros"
    with pytest.raises(InvalidInput) as error:
        parse_payload(shop.OrderWebhook, raw)
    assert error.value.field == "line_items.1.price"


def test_order_naming_no_customer_is_refused() -> None:
    order = parse_payload(
        shop.OrderWebhook,
        {**payload("shop_order_created.json"), "email": "", "phone": None, "customer": None},
    )
    with pytest.raises(InvalidInput) as error:
        shop.to_envelopes(order)
    assert error.value.field == "email"
