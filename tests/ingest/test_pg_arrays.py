"""The archive INSERT's own binary arrays (services/ingest/pg_arrays.py) read back through
PostgreSQL exactly as psycopg's own dump of the same lists does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from services.common.config import libpq_url
from services.ingest import pg_arrays

pytestmark = pytest.mark.integration

_NOW = datetime.now(UTC)
CASES: list[tuple[str, Any, list[Any]]] = [
    ("text", pg_arrays.text_array, ["evt_1", "", "caf\u00e9 \u2603 \U0001f600", None, "x" * 5000]),
    ("text", pg_arrays.text_array, [None, None]),
    ("text", pg_arrays.text_array, ["webhook", "webhook", None, "webhook", "events_list"]),
    ("text", pg_arrays.text_array, []),
    ("bytea", pg_arrays.bytea_array, [b"", bytes(range(256)) * 20, b"\x00", b'{"a": 1}']),
    ("boolean", pg_arrays.bool_array, [True, False, True]),
    (
        "timestamptz",
        pg_arrays.timestamptz_array,
        [
            datetime(2026, 12, 6, 14, 0, 0, 123456, tzinfo=UTC),
            datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(1970, 1, 1, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime(2026, 6, 1, 12, 30, tzinfo=timezone(timedelta(hours=-7, minutes=-30))),
            None,
            datetime.now(UTC),
        ],
    ),
    ("timestamptz", pg_arrays.timestamptz_array, [_NOW, _NOW, None, _NOW, _NOW + timedelta(1)]),
]


@pytest.mark.parametrize(("sql_type", "encode", "values"), CASES)
def test_encoded_arrays_read_back_as_psycopgs_own(
    database_url: str, sql_type: str, encode: Any, values: list[Any]
) -> None:
    encoded = encode(values)
    assert isinstance(encoded, pg_arrays.EncodedArray)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        pg_arrays.register(conn.adapters)
        ours, psycopgs, same = conn.execute(
            f"SELECT %b::{sql_type}[], %b::{sql_type}[], %b::{sql_type}[] = %b::{sql_type}[]",
            (encoded, values, encoded, values),
        ).fetchone()  # type: ignore[misc]
    assert ours == psycopgs == (values or [])
    assert same is True


def test_a_lone_surrogate_is_refused_as_psycopg_refuses_it() -> None:
    with pytest.raises(UnicodeEncodeError):
        pg_arrays.text_array(["evt_\udc00"])


def test_a_naive_datetime_is_left_to_psycopg() -> None:
    assert pg_arrays.timestamptz_array([datetime(2026, 1, 1)]) is None
