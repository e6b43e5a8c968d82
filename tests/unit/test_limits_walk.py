"""The touchpoint limits' shortcut: a value whose JSON shows it within the limits is not
walked; whenever the shortcut says so, the walk would have found nothing."""

from __future__ import annotations

import json
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
    load_json,
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


@pytest.mark.parametrize(
    "text",
    [
        b'{"n": 18446744073709551616}',
        b'{"n": -9223372036854775809}',
        b'{"n": [1, 123456789012345678901234567890]}',
        b'{"n": 1234567890123456789, "s": "12345678901234567890"}',
    ],
)
def test_json_keeps_every_integer_exact(text: bytes) -> None:
    """orjson reads an integer beyond 64 bits as a float (which would be stored rounded,
    never refused): `load_json` gives the integer the text wrote."""
    assert load_json(text) == json.loads(text)
    assert load_json(text.decode()) == json.loads(text)
    assert not any(isinstance(v, float) for v in _numbers(load_json(text)))


def _numbers(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, int | float) else []


@pytest.mark.parametrize(
    "text",
    [
        b"NaN",
        b'{"n": Infinity}',
        b'{"n": 1e400}',
        b'{"n": -1e400, "m": 1234567890123456789}',
        b'{"s": "\xff", "m": 1234567890123456789}',
    ],
    ids=["nan", "infinity", "beyond-a-double", "beyond-a-double-beside-long-digits", "not-utf8"],
)
def test_json_is_what_orjson_reads_and_nothing_more(text: bytes) -> None:
    """NaN, the infinities, numbers beyond a double and text that is not UTF-8 are not JSON:
    refused, with or without a long run of digits beside them."""
    with pytest.raises(orjson.JSONDecodeError):
        load_json(text)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_a_number_that_is_not_finite_is_refused_naming_its_place(number: float) -> None:
    """orjson stores NaN and the infinities as null: a Python caller's (or the standard
    library's JSON) such number is bad input, named, not a silent null."""
    places = [
        (raw_touchpoint(data={"summary": "x", "n": [1, number]}), "data.n.1"),
        (
            raw_touchpoint(claims=[{"subject": "order:A-1:total", "value": number}]),
            "claims.0.value",
        ),
        (raw_touchpoint(actor={"kind": "agent", "id": "a-1", "score": number}), "actor.score"),
    ]
    for raw, place in places:
        with pytest.raises(InvalidInput) as refused:
            check_limits(parse_envelope(raw), DEFAULT_LIMITS)
        assert refused.value.errors[0] == (place, "not a finite number")
    check_limits(parse_envelope(raw_touchpoint(data={"summary": "x", "n": None})), DEFAULT_LIMITS)


def test_the_actors_own_fields_are_held_to_the_limits_of_data() -> None:
    """An actor's fields beyond kind, id and name are stored as they came: the limits that
    hold for data hold for them (a 2**64 there was a 500)."""
    cases = [
        ({"n": 2**64}, ("actor.n", "a number beyond 64 bits")),
        (
            {"deep": [[[[[[[[[1]]]]]]]]]},
            ("actor.deep.0.0.0.0.0.0.0", "nested deeper than 8 levels"),
        ),
        ({"note": "x" * 20_001}, ("actor.note", "longer than 20000 characters")),
    ]
    for extra, error in cases:
        raw = raw_touchpoint(actor={"kind": "agent", "id": "a-1", **extra})
        with pytest.raises(InvalidInput) as refused:
            check_limits(parse_envelope(raw), DEFAULT_LIMITS)
        assert refused.value.errors[0] == error
    check_limits(parse_envelope(raw_touchpoint(actor={"kind": "bot", "team": "b"})), DEFAULT_LIMITS)


def test_json_deeper_than_the_standard_library_reads_is_refused_by_the_depth_limit() -> None:
    """orjson reads 1,024 levels, the standard library fewer: a body that deep with a long
    run of digits was a RecursionError (a 500) in the second reading; it is orjson's reading,
    refused by the depth limit as before."""
    text = b'{"summary": "x", "n": ' + b"[" * 1000 + b"1234567890123456789" + b"]" * 1000 + b"}"
    data = load_json(text)
    envelope = parse_envelope(raw_touchpoint(data=data))
    with pytest.raises(InvalidInput) as refused:
        check_limits(envelope, DEFAULT_LIMITS)
    assert refused.value.errors[0][1] == "nested deeper than 8 levels"
