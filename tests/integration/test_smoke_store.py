"""The store fixture works on both stores."""

from hub.app import Hub
from tests.factories import touchpoint


def test_first_touchpoint_creates_a_customer(hub: Hub) -> None:
    accepted = hub.record(touchpoint())
    assert accepted.position > 0
    assert hub.find_customer("email:li.wei@example.com") == accepted.customer_id
