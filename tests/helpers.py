"""Small helpers shared by integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg

from services.common.config import libpq_url


async def eventually(check: Callable[[], Any], *, attempts: int = 200, pause: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value.

    This bounds how long a test waits for asynchronous work (a publish, a sweep); it is not a
    performance assertion.
    """
    value = None
    for _ in range(attempts):
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(pause)
    raise AssertionError(f"condition never held; last value: {value!r}")


def query(database_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one parametrised statement and return its rows (autocommit)."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        cursor = conn.execute(sql, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []
