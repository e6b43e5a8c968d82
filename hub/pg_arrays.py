"""One-dimensional PostgreSQL arrays in binary form, for the parameters of the write path.

psycopg dumps a Python list element by element in Python (`ListBinaryDumper`): it scans the
list for its element type, then calls the element's dumper and packs a length for each item.
A batch of 500 touchpoints sends nine such arrays to the record function and more to the
look-ups, and the dumping was a tenth of the batch's client CPU (`bench/ingest.py`). These
list types know their element type, so their dumpers write the array (PostgreSQL's
`array_send` format: dimensions, null flag, element type, then each item's length and bytes)
in one pass. Registered globally for these types only; any other list is psycopg's as usual.
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


def _array(element_oid: int, items: list[bytes], has_null: bool) -> bytes:
    if not items:
        return _EMPTY.pack(0, 0, element_oid)
    return _HEADER.pack(1, has_null, element_oid, len(items), 1) + b"".join(items)


class UUIDArray(list[UUID | str]):
    """A `uuid[]` parameter (of UUIDs, or their strings)."""

    def binary(self) -> bytes:
        items = [_UUID_LENGTH + (u if isinstance(u, UUID) else UUID(u)).bytes for u in self]
        return _array(2950, items, False)


class Int8Array(list[int | None]):
    """A `bigint[]` parameter; None is NULL."""

    def binary(self) -> bytes:
        pack = _INT8.pack
        items = [_NULL if v is None else pack(8, v) for v in self]
        return _array(20, items, None in self)


class TextArray(list[str]):
    """A `text[]` parameter."""

    def binary(self) -> bytes:
        pack = _LENGTH.pack
        encoded = [s.encode() for s in self]
        return _array(25, [pack(len(b)) + b for b in encoded], False)


class ByteaArray(list[bytes]):
    """A `bytea[]` parameter."""

    def binary(self) -> bytes:
        pack = _LENGTH.pack
        return _array(17, [pack(len(b)) + b for b in self], False)


class _ArrayDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        return obj.binary()  # type: ignore[no-any-return]


def _dumper(array_oid: int) -> type[Dumper]:
    return type(f"Dumper{array_oid}", (_ArrayDumper,), {"oid": array_oid})


for _cls, _oid in ((UUIDArray, 2951), (Int8Array, 1016), (TextArray, 1009), (ByteaArray, 1001)):
    psycopg.adapters.register_dumper(_cls, _dumper(_oid))
