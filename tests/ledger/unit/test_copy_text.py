"""The projection's COPY text encoding (issue 12): what the writer sends PostgreSQL must be
what psycopg's own ``Copy.write_row`` sent, escapes and NULLs included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest
from psycopg.adapt import PyFormat, Transformer

from services.ledger.projection import copy_text


def test_values_nulls_lists_and_escapes() -> None:
    rows = [
        ("evt_1", None, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), True, 42, ["a", "b c"]),
        ("tab\there", "back\\slash", None, False, -7, []),
        ("line\nbreak\r", 'quote"', None, None, 0, ['q"', "x\\y", None]),
    ]
    assert copy_text(rows) == (
        b'evt_1\t\\N\t2026-01-02 03:04:05+00:00\tt\t42\t{a,"b c"}\n'
        b"tab\\there\tback\\\\slash\t\\N\tf\t-7\t{}\n"
        b'line\\nbreak\\r\tquote"\t\\N\t\\N\t0\t{"q\\\\"","x\\\\\\\\y",NULL}\n'
    )


def test_no_rows_is_an_empty_copy() -> None:
    assert copy_text([]) == b""


def _reference(rows: list[tuple[object, ...]]) -> bytes:
    """What ``Copy.write_row`` sends: psycopg's text dumper for every value, then COPY's
    escapes (the encoding ``copy_text`` replaced, kept here as the definition)."""
    transformer = Transformer()
    lines = []
    for row in rows:
        values = transformer.dump_sequence(row, [PyFormat.TEXT] * len(row))
        escaped = []
        for v in values:
            if v is None:
                escaped.append(b"\\N")
                continue
            data = bytes(v)
            for raw, esc in ((b"\\", b"\\\\"), (b"\t", b"\\t"), (b"\n", b"\\n"), (b"\r", b"\\r")):
                data = data.replace(raw, esc)
            escaped.append(data)
        lines.append(b"\t".join(escaped) + b"\n")
    return b"".join(lines)


def test_same_bytes_as_psycopgs_dumpers_for_every_kind_of_value() -> None:
    plus_five = timezone(timedelta(hours=5, minutes=30))
    rows: list[tuple[object, ...]] = [
        ("évènement ✓", 2**70, -(2**63), True, False, None),
        (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=plus_five)),
        # the same instant in two zones must keep its own zone (the cache is UTC only)
        (
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            datetime(2026, 1, 2, 8, 34, 5, tzinfo=plus_five),
        ),
        (datetime(2026, 1, 2, 3, 4, 5), Decimal("1.50"), 2.5, b"\x00\x01bytes"),
        ([True, False], [1, 0], [1, 1], [True, True], ["NULL", "", " x", "a,b", "{}"]),
        (["é"], [["a", "b"], ["c", None]], ["tab\there"], [], [None]),
        ("back\\slash", "\\N", "a\tb", "x", "\\"),
    ]
    assert copy_text(rows) == _reference(rows)
    assert copy_text(rows) == _reference(rows)  # again, with every cache warm


def test_a_nul_in_text_is_refused_as_psycopg_refuses_it() -> None:
    with pytest.raises(psycopg.DataError):
        copy_text([("a\x00b", 1)])
