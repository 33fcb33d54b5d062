"""Transactions on the raw psycopg connection under the service's SQLAlchemy engine.

The projection uses ``COPY`` and plain SQL through psycopg directly (much faster than going
through SQLAlchemy Core for thousands of rows), while pool sizes and timeouts stay decided
in one place (``services.common.db``). ``DatabaseUnavailable`` tells callers "retry later"
apart from "this event is bad".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL could not be reached or the connection broke: retry later."""


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is away rather than that a statement was refused."""
    if isinstance(exc, DatabaseUnavailable | PoolTimeout | OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return not isinstance(exc, psycopg.errors.QueryCanceled)
    return isinstance(exc, OSError | ConnectionError)


@asynccontextmanager
async def raw_transaction(engine: AsyncEngine) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A psycopg connection inside a transaction committed on exit (rolled back on error)."""
    try:
        async with engine.begin() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert isinstance(driver, psycopg.AsyncConnection)
            yield driver
    except Exception as exc:
        if is_unavailable(exc):
            raise DatabaseUnavailable(repr(exc)) from exc
        raise
