"""Conversions between protobuf Timestamps, datetimes and Stripe's epoch seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp


def to_timestamp(value: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp, or None for a missing time (leaves the field unset)."""
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def from_timestamp(ts: Timestamp, present: bool) -> datetime | None:
    """A timezone-aware datetime, or None when the message field was not set."""
    if not present:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def micros(value: datetime) -> int:
    """Microseconds since the epoch: exact, for page tokens."""
    delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)
