"""Transactions on the raw psycopg connection under the service's SQLAlchemy engine.

The projection uses ``COPY`` and plain SQL through psycopg directly (much faster than going
through SQLAlchemy Core for thousands of rows), while pool sizes and timeouts stay decided
in one place (``services.common.db``). ``DatabaseUnavailable`` tells callers "retry later"
apart from "this event is bad".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# One home for "is the database away?" (shared with ingest and the gRPC error mapping).
from services.common.db_errors import DatabaseUnavailable, is_unavailable

__all__ = ["DatabaseUnavailable", "is_unavailable", "raw_autocommit", "raw_transaction"]


@asynccontextmanager
async def raw_transaction(engine: AsyncEngine) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A psycopg connection inside a transaction committed on exit (rolled back on error)."""
    with _unavailable_means_later():
        async with engine.begin() as conn:
            yield await _driver(conn)


@asynccontextmanager
async def raw_autocommit(engine: AsyncEngine) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A psycopg connection in autocommit mode (given back to the pool as it was): for the
    statements PostgreSQL refuses inside a transaction block, such as ``VACUUM``."""
    with _unavailable_means_later():
        async with engine.connect() as conn:
            yield await _driver(await conn.execution_options(isolation_level="AUTOCOMMIT"))


@contextmanager
def _unavailable_means_later() -> Iterator[None]:
    """A database that is away raises ``DatabaseUnavailable`` (retry later); any other error
    goes through as it is (a bug or a bad event must not look like an outage)."""
    try:
        yield
    except Exception as exc:
        if is_unavailable(exc):
            raise DatabaseUnavailable(repr(exc)) from exc
        raise


async def _driver(conn: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    return driver
