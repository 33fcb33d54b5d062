"""The projection's COPY text encoding (issue 12): what the writer sends PostgreSQL must be
what psycopg's own ``Copy.write_row`` sent, escapes and NULLs included."""

from __future__ import annotations

from datetime import UTC, datetime

from services.ledger.projection import copy_text


def test_values_nulls_lists_and_escapes() -> None:
    rows = [
        ("evt_1", None, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), True, 42, ["a", "b c"]),
        ("tab\there", "back\\slash", None, False, -7, []),
        ("line\nbreak\r", 'quote"', None, None, 0, ['q"', "x\\y", None]),
    ]
    assert copy_text(rows) == (
        b"evt_1\t\\N\t2026-01-02 03:04:05+00:00\tt\t42\t{a,\"b c\"}\n"
        b"tab\\there\tback\\\\slash\t\\N\tf\t-7\t{}\n"
        b'line\\nbreak\\r\tquote"\t\\N\t\\N\t0\t{"q\\\\"","x\\\\\\\\y",NULL}\n'
    )


def test_no_rows_is_an_empty_copy() -> None:
    assert copy_text([]) == b""
