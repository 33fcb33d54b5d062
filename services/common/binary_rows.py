"""Bulk reads in PostgreSQL's binary format, for the few statements that move every payload.

Why: the archive stream of a replay sends every archived payload once. Through SQLAlchemy's
``conn.execute`` the rows come in text format, so PostgreSQL hex-encodes each ``bytea`` (twice
its size on the wire) and psycopg decodes it again, and each row goes through SQLAlchemy's
result processing: ~40 us of the ingest's CPU per event, against ~14 us for the same rows in
binary format as psycopg named tuples (scratch A/B, 20,000 events of the fixtures' payloads;
bench/RESULTS.md "Sixth pass: the archive stream in binary"). The statement is still built
and compiled by SQLAlchemy, so its shape (keyset, bounds, columns) keeps one home.
"""

from __future__ import annotations

from typing import Any, cast

from psycopg import AsyncConnection
from psycopg.rows import namedtuple_row
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncConnection as SAConnection


async def fetch_binary(conn: SAConnection, query: Select[Any]) -> list[Any]:
    """Every row of ``query`` on ``conn`` (in its transaction), binary format, named by the
    statement's column labels (``row.payload`` is ``bytes``, times are aware datetimes)."""
    compiled = query.compile(dialect=conn.dialect)
    fairy = await conn.get_raw_connection()
    driver = cast(AsyncConnection[Any], fairy.driver_connection)
    async with driver.cursor(binary=True, row_factory=namedtuple_row) as cursor:
        await cursor.execute(str(compiled), compiled.params)
        return await cursor.fetchall()
