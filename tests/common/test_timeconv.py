"""``to_timestamp`` computes what ``Timestamp.FromDatetime`` does, faster: same seconds and
nanos for times before and after the epoch, at the range's ends and in other zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.timeconv import to_timestamp

_TIMES = [
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 12, 6, 6, 30, 1, 123_456, tzinfo=UTC),
    datetime(2024, 2, 29, 12, 0, tzinfo=timezone(timedelta(hours=-7, minutes=-30))),
    datetime(2024, 3, 31, 1, 59, 59, 1, tzinfo=timezone(timedelta(hours=14))),
]


@pytest.mark.parametrize("value", _TIMES)
def test_same_as_from_datetime(value: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(value.astimezone(UTC))
    got = to_timestamp(value)
    assert got is not None
    assert (got.seconds, got.nanos) == (expected.seconds, expected.nanos)


def test_none_stays_unset() -> None:
    assert to_timestamp(None) is None
