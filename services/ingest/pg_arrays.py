"""One-dimensional PostgreSQL arrays in the binary wire format, encoded in one pass.

Why (issue 12): the archive's group-commit INSERT sends its batch as twelve arrays (see
archive.INSERT_BATCH_SQL). psycopg dumps a Python list through a generic list dumper made
anew for every parameter (it looks for the element type, then calls the element's dumper per
item), ~5.6% of the ingest process's CPU in the sixth pass's profile. The archive's columns
have four element types, known in advance, so each array is encoded here with one loop and
handed to psycopg as bytes that need no further dumping (:func:`register`).

Format (PostgreSQL's ``array_send``): ndim, has-null flag, element type oid, then per
dimension its length and lower bound (1), then per element its byte length (-1 for NULL) and
bytes. Elements are what PostgreSQL's own binary ``*_send`` functions give: UTF-8 text (the
connection's encoding; :func:`usable` checks it), raw bytea, one byte per boolean, and
timestamptz as microseconds since 2000-01-01 UTC. tests/ingest/test_pg_arrays.py reads every
array back through PostgreSQL and compares it with psycopg's own dump.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from psycopg.abc import Buffer
from psycopg.adapt import AdaptersMap, Dumper
from psycopg.pq import Format

TEXT_OID, BYTEA_OID, BOOL_OID, TIMESTAMPTZ_OID = 25, 17, 16, 1184
_HEAD = struct.Struct("!iiIii")  # ndim = 1, has null, element oid, length, lower bound = 1
_EMPTY = struct.Struct("!iiI")  # ndim = 0: an empty array
_LENGTH = struct.Struct("!i")
_NULL = _LENGTH.pack(-1)
_TRUE = _LENGTH.pack(1) + b"\x01"
_FALSE = _LENGTH.pack(1) + b"\x00"
_TIMESTAMP = struct.Struct("!iq")  # length 8, microseconds since the PostgreSQL epoch
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class EncodedArray(bytes):
    """An array already in the binary format; its subclass names the array type."""


class TextArray(EncodedArray):
    pass


class ByteaArray(EncodedArray):
    pass


class BoolArray(EncodedArray):
    pass


class TimestamptzArray(EncodedArray):
    pass


_A = TypeVar("_A", bound=EncodedArray)


class _PassThrough(Dumper):
    """Sends the already encoded bytes as they are."""

    format = Format.BINARY

    def dump(self, obj: bytes) -> Buffer:
        return obj


def _pass_through(array_oid: int) -> type[Dumper]:
    return type(f"PassThrough{array_oid}", (_PassThrough,), {"oid": array_oid})


def register(adapters: AdaptersMap) -> None:
    """Teach psycopg (its global adapters, before connections copy them; or one connection's
    ``adapters``) to send the encoded arrays."""
    for cls, array_oid in (
        (TextArray, 1009),
        (ByteaArray, 1001),
        (BoolArray, 1000),
        (TimestamptzArray, 1185),
    ):
        adapters.register_dumper(cls, _pass_through(array_oid))


def usable(encoding: str) -> bool:
    """Text is encoded as UTF-8 here: only for connections that speak it."""
    return encoding == "utf-8"


def _array(cls: type[_A], oid: int, count: int, has_null: int, parts: list[bytes]) -> _A:
    if not count:
        return cls(_EMPTY.pack(0, 0, oid))
    return cls(_HEAD.pack(1, has_null, oid, count, 1) + b"".join(parts))


def text_array(values: Sequence[str | None]) -> TextArray:
    """UnicodeEncodeError for a lone surrogate, as psycopg's own dump raises. A value that
    repeats the previous one (the batch's ``recovery_source``) reuses its encoding."""
    parts: list[bytes] = []
    has_null = 0
    last: str | None = None
    last_parts: tuple[bytes, bytes] = (b"", b"")
    for value in values:
        if value is None:
            has_null = 1
            parts.append(_NULL)
            continue
        if value is not last:
            data = value.encode("utf-8")
            last, last_parts = value, (_LENGTH.pack(len(data)), data)
        parts.extend(last_parts)
    return _array(TextArray, TEXT_OID, len(values), has_null, parts)


def bytea_array(values: Sequence[bytes]) -> ByteaArray:
    parts: list[bytes] = []
    for value in values:
        parts.append(_LENGTH.pack(len(value)))
        parts.append(value)
    return _array(ByteaArray, BYTEA_OID, len(values), 0, parts)


def bool_array(values: Sequence[bool]) -> BoolArray:
    parts = [_TRUE if value else _FALSE for value in values]
    return _array(BoolArray, BOOL_OID, len(values), 0, parts)


def timestamptz_array(values: Sequence[datetime | None]) -> TimestamptzArray | None:
    """None when a value has no time zone (psycopg sends those as ``timestamp``, which the
    server reads in the session's zone): the caller then sends the list as it is. A value
    that repeats the previous one (the batch's ``received_at``) reuses its encoding."""
    parts: list[bytes] = []
    has_null = 0
    last: datetime | None = None
    last_part = b""
    for value in values:
        if value is None:
            has_null = 1
            parts.append(_NULL)
            continue
        if value is not last:
            if value.tzinfo is None or value.utcoffset() is None:
                return None
            last, last_part = value, _TIMESTAMP.pack(8, (value - _PG_EPOCH) // _MICROSECOND)
        parts.append(last_part)
    return _array(TimestamptzArray, TIMESTAMPTZ_OID, len(values), has_null, parts)
