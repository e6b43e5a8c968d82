"""One-dimensional PostgreSQL arrays in binary form, for the parameters of the write path.

psycopg dumps a Python list element by element (`ListBinaryDumper`): it finds a dumper for
the list by scanning it for its element type, then calls the element's dumper and packs a
length for each item. A batch sends nine such arrays to the record function and more to the
look-ups. These list types know their element type, so their dumpers write the array
(PostgreSQL's `array_send` format: dimensions, null flag, element type, then each item's
length and bytes) in one pass, copying each item once. Measured in process, four arrays (the
events' ids, versions, topics and 850-byte states): 3.6 µs against psycopg's 13.0 for one
event, 14.9 against 33.7 for 25, 246 against 430 for 500. Registered globally for these types
only; any other list is psycopg's as usual.
"""

from __future__ import annotations

import struct
from typing import Any
from uuid import UUID

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

_HEADER = struct.Struct(">iiIii")  # ndim, has null, element oid, length, lower bound
_EMPTY = struct.Struct(">iiI")  # ndim 0, no null, element oid
_LENGTH = struct.Struct(">i")
_INT8 = struct.Struct(">iq")  # length 8, value
_NULL = b"\xff\xff\xff\xff"
_UUID_LENGTH = _LENGTH.pack(16)


def _array(element_oid: int, parts: list[bytes], count: int, has_null: bool) -> bytes:
    """The array of `count` items whose lengths and bytes are `parts`, after a slot at
    `parts[0]` for the header (one copy of everything, in the join)."""
    if not count:
        return _EMPTY.pack(0, 0, element_oid)
    parts[0] = _HEADER.pack(1, has_null, element_oid, count, 1)
    return b"".join(parts)


def _with_lengths(items: list[bytes]) -> list[bytes]:
    """[header slot, length, item, length, item, ...]: no item copied before the join."""
    pack = _LENGTH.pack
    parts = [b""]
    for item in items:
        parts.append(pack(len(item)))
        parts.append(item)
    return parts


class UUIDArray(list[UUID | str]):
    """A `uuid[]` parameter (of UUIDs, or their strings)."""

    def binary(self) -> bytes:
        parts = [b""]
        parts += [_UUID_LENGTH + (u if isinstance(u, UUID) else UUID(u)).bytes for u in self]
        return _array(2950, parts, len(self), False)


class Int8Array(list[int | None]):
    """A `bigint[]` parameter; None is NULL."""

    def binary(self) -> bytes:
        pack = _INT8.pack
        parts = [b""]
        parts += [_NULL if v is None else pack(8, v) for v in self]
        return _array(20, parts, len(self), None in self)


class TextArray(list[str]):
    """A `text[]` parameter, encoded as UTF-8 whatever the connection's client encoding (the
    server converts from that one): for ASCII values, which is all the hub sends this way
    (topics, key digests, customer ids). psycopg's own dumper follows the encoding."""

    def binary(self) -> bytes:
        return _array(25, _with_lengths([s.encode() for s in self]), len(self), False)


class ByteaArray(list[bytes]):
    """A `bytea[]` parameter."""

    def binary(self) -> bytes:
        return _array(17, _with_lengths(self), len(self), False)


class _ArrayDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        return obj.binary()  # type: ignore[no-any-return]


def _dumper(array_oid: int) -> type[Dumper]:
    return type(f"Dumper{array_oid}", (_ArrayDumper,), {"oid": array_oid})


for _cls, _oid in ((UUIDArray, 2951), (Int8Array, 1016), (TextArray, 1009), (ByteaArray, 1001)):
    psycopg.adapters.register_dumper(_cls, _dumper(_oid))
