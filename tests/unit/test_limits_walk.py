"""The touchpoint limits' shortcut: a value whose JSON shows it within the limits is not
walked; whenever the shortcut says so, the walk would have found nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.envelope import (
    DEFAULT_LIMITS,
    Limits,
    _oversized,
    _within,
    check_limits,
    parse_envelope,
)
from hub.errors import InvalidInput
from tests.factories import raw_touchpoint

SMALL = Limits(max_string_chars=12, max_data_depth=3)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(value=json_values)
@settings(max_examples=2000, deadline=None)
def test_a_value_within_by_its_json_is_within_by_the_walk(value: Any) -> None:
    if _within(orjson.dumps(value), SMALL):
        assert _oversized(value, "data", 1, SMALL) is None


def test_values_at_the_limits_are_walked_and_refused() -> None:
    deep = {"a": {"b": {"c": {}}}}  # four levels: one too many
    assert not _within(orjson.dumps(deep), SMALL)
    assert _oversized(deep, "data", 1, SMALL) == ("data.a.b.c", "nested deeper than 3 levels")
    long = {"note": "x" * 13}
    assert not _within(orjson.dumps(long), SMALL)
    assert _oversized(long, "data", 1, SMALL) == ("data.note", "longer than 12 characters")
    assert _within(orjson.dumps({"a": [1]}), SMALL)  # 9 characters, two brackets


def test_an_integer_beyond_64_bits_is_refused_naming_its_place() -> None:
    """orjson (the store's encoder) holds signed and unsigned 64-bit integers, no more: such
    a number is bad input, named, never an error of the hub's (a fuzzed call record's
    `duration` of 2**64 was a 500)."""
    for number in (2**64, -(2**63) - 1):
        envelope = parse_envelope(raw_touchpoint(data={"summary": "x", "n": [1, number]}))
        with pytest.raises(InvalidInput) as refused:
            check_limits(envelope, DEFAULT_LIMITS)
        assert refused.value.errors[0] == ("data.n.1", "a number beyond 64 bits")
    claim = {"subject": "order:A-1:total", "value": 2**70}
    envelope = parse_envelope(raw_touchpoint(claims=[claim]))
    with pytest.raises(InvalidInput) as refused:
        check_limits(envelope, DEFAULT_LIMITS)
    assert refused.value.errors[0] == ("claims.0.value", "a number beyond 64 bits")
    for edge in (2**64 - 1, -(2**63)):  # the ends of the range are stored as they are
        check_limits(parse_envelope(raw_touchpoint(data={"n": edge})), DEFAULT_LIMITS)
