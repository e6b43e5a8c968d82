"""Parts of the fast write path that must behave exactly like the slow ones they replace."""

from __future__ import annotations

import time
import uuid

from hub.cache import AggregateCache
from hub.codec import CHAIN, dumps, with_chain
from hub.customer import Customer
from hub.envelope import TOUCHPOINT_NAMESPACE, touchpoint_id_for


def test_stored_bytes_with_spliced_links_equal_encoding_the_whole_state() -> None:
    states = [
        {"touchpoint_id": "t", "data": {"b": 1, "a": [1, 2]}, "_personal": {"c": "x"}},
        {"originator_topic": "x"},
        {"Upper": 1, "lower": 2},  # sorts before `_chain`: encoded in full
        {},
    ]
    for state in states:
        full = dumps({**state, CHAIN: {"prev": "p" * 64, "hash": "h" * 64}})
        assert with_chain(state, dumps(state), "p" * 64, "h" * 64) == full


def test_touchpoint_ids_are_the_uuid5_of_the_source_key() -> None:
    for channel, source_id in [("web", "order-1"), ("email", "<ä@b.example>"), ("phone", "")]:
        expected = uuid.uuid5(TOUCHPOINT_NAMESPACE, f"{channel}\x1f{source_id}")
        assert touchpoint_id_for(channel, source_id) == str(expected)


def test_the_cache_drops_the_least_recently_used_beyond_its_size() -> None:
    cache: AggregateCache[Customer] = AggregateCache(maxsize=2)
    first, second, third = Customer(), Customer(), Customer()
    cache.put([(str(first.id), first), (str(second.id), second)])
    cache.put(cache.take([str(first.id)]).items())  # used again: now the most recent
    cache.put([(str(third.id), third)])
    assert set(cache.take([str(c.id) for c in (first, second, third)])) == {
        str(first.id),
        str(third.id),
    }


def test_a_taken_customer_is_not_handed_out_twice() -> None:
    cache: AggregateCache[Customer] = AggregateCache(maxsize=10)
    customer = Customer()
    cache.put([(str(customer.id), customer)])
    assert cache.take([str(customer.id)]) == {str(customer.id): customer}
    assert cache.take([str(customer.id)]) == {}


def test_the_cache_forgets_customers_unused_for_its_ttl() -> None:
    cache: AggregateCache[Customer] = AggregateCache(maxsize=10, ttl=0.05)
    customer = Customer()
    cache.put([(str(customer.id), customer)])
    time.sleep(0.06)
    assert cache.take([str(customer.id)]) == {} and len(cache) == 0


def _with_orders(count: int) -> Customer:
    customer = Customer()
    for n in range(count):
        customer.state.orders[f"O-{n}"] = {"status": "placed", "total": None}
    return customer


def test_the_cache_keeps_its_customers_facts_within_its_weight() -> None:
    cache: AggregateCache[Customer] = AggregateCache(
        maxsize=100, max_weight=25, weigh=lambda c: c.state.weight()
    )
    small, big, other = _with_orders(3), _with_orders(15), _with_orders(6)
    cache.put([(str(small.id), small), (str(big.id), big)])
    assert cache.weight == 4 + 16
    cache.put(
        [(str(other.id), other)]
    )  # 27 > 25: the least recently used (small) goes, big and other stay
    assert cache.weight == 16 + 7 and len(cache) == 2
    taken = cache.take([str(small.id), str(big.id)])
    assert list(taken) == [str(big.id)] and cache.weight == 7


def test_a_customer_put_back_heavier_is_weighed_again() -> None:
    cache: AggregateCache[Customer] = AggregateCache(
        maxsize=100, max_weight=10, weigh=lambda c: c.state.weight()
    )
    first, second = _with_orders(2), _with_orders(2)
    cache.put([(str(first.id), first), (str(second.id), second)])
    grown = cache.take([str(first.id)])[str(first.id)]
    grown.state.orders.update({f"N-{n}": {} for n in range(5)})  # it bought while checked out
    cache.put([(str(grown.id), grown)])  # 3 + 8 = 11 > 10: second (least recent) goes
    assert cache.weight == 8 and set(cache.take([str(second.id), str(first.id)])) == {str(first.id)}
