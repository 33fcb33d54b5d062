"""Hypothesis strategies that build any protobuf request message from its descriptor, with
the values an attacker or a buggy client sends: NUL characters, long strings, extreme
integers, unknown enum numbers, Timestamps far outside the representable range."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import strategies as st

F = FieldDescriptor
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

TEXT = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=24),
    st.sampled_from(["", "\x00", "evt_\x00x", "x" * 5000, "cus_1", "t1", "u1", "é", "%"]),
)
TIMESTAMP = st.builds(
    lambda seconds, nanos: Timestamp(seconds=seconds, nanos=nanos),
    st.one_of(
        st.integers(-(2**40), 2**40),
        st.sampled_from([0, 1_700_000_000, -62_135_596_801, 253_402_300_800, 2**62]),
    ),
    st.one_of(st.just(0), st.integers(-5, 2_000_000_000)),
)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == F.TYPE_STRING:
        return TEXT
    if kind == F.TYPE_BYTES:
        return st.binary(max_size=32)
    if kind == F.TYPE_BOOL:
        return st.booleans()
    if kind in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        return st.one_of(st.integers(*INT32), st.sampled_from([0, 1, -1, INT32[1]]))
    if kind in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return st.one_of(st.integers(*INT64), st.sampled_from([0, 1, -1, INT64[1]]))
    if kind in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if kind in (F.TYPE_UINT64, F.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if kind == F.TYPE_DOUBLE:
        return st.floats()
    if kind == F.TYPE_FLOAT:
        return st.floats(width=32)
    if kind == F.TYPE_ENUM:
        return st.integers(-3, 12)  # proto3 enums are open: unknown numbers arrive too
    raise ValueError(f"unsupported field type {kind}")


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == F.TYPE_MESSAGE:
        assert field.message_type is not None
        return message_strategy(field.message_type, depth + 1)
    return _scalar(field)


def message_strategy(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor``'s type with any subset of fields set."""
    if descriptor.full_name == "google.protobuf.Timestamp":
        return TIMESTAMP
    cls = GetMessageClass(descriptor)
    if depth > 2:
        return st.just(cls())
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            continue
        value = _value(field, depth)
        repeated = field.is_repeated
        fields[field.name] = st.none() | (st.lists(value, max_size=3) if repeated else value)

    def build(values: dict[str, Any]) -> Message:
        message = cls()
        for name, value in values.items():
            if value is None:
                continue
            field = descriptor.fields_by_name[name]
            target = getattr(message, name)
            if field.is_repeated:
                if field.type == F.TYPE_MESSAGE:
                    for item in value:
                        target.add().CopyFrom(item)
                else:
                    target.extend(value)
            elif field.type == F.TYPE_MESSAGE:
                target.CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries(fields).map(build)
