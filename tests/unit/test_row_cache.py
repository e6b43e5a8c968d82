"""A view's row cache is bounded by count and by the weight of its documents."""

from __future__ import annotations

from projections.base import RowCache, entries


def doc(orders: int) -> dict[str, object]:
    return {"touchpoints": orders, "orders": {f"O-{n}": {} for n in range(orders)}, "contact": {}}


def test_a_document_weighs_one_plus_its_entries() -> None:
    assert entries(doc(0)) == 1 and entries(doc(4)) == 5


def test_documents_beyond_the_weight_are_dropped_least_recently_used_first() -> None:
    cache = RowCache(size=100, max_weight=12)
    cache.keep("a", doc(4))
    cache.keep("b", doc(4))
    assert cache.take("a") is not None  # a is now the most recent
    cache.keep("c", doc(4))  # 15 > 12: b goes
    assert cache.take("b") is None and cache.take("a") and cache.take("c")
    assert cache.weight == 10 and len(cache) == 2


def test_a_document_kept_again_is_weighed_as_it_is_now() -> None:
    cache = RowCache(size=100, max_weight=100)
    cache.keep("a", doc(1))
    cache.keep("a", doc(9))
    assert cache.weight == 10 and len(cache) == 1
    cache.clear()
    assert cache.weight == 0 and cache.take("a") is None


def test_the_count_still_bounds_it() -> None:
    cache = RowCache(size=2)
    for key in "abc":
        cache.keep(key, doc(0))
    assert cache.take("a") is None and len(cache) == 2
