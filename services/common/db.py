"""Database engines: one place decides pool sizes and timeouts for every service.

Timeouts are short on purpose: a service answering "unavailable" in two seconds lets the
caller (Stripe, an operator, another service) retry; a service hanging on a dead database
helps nobody.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.common.config import sqlalchemy_url

CONNECT_TIMEOUT_SECONDS = 2


def _connect_args(statement_timeout_ms: int) -> dict[str, object]:
    return {
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "options": f"-c statement_timeout={statement_timeout_ms}",
        # Fail fast when the server vanishes mid-connection instead of waiting on TCP.
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
    }


def make_async_engine(
    url: str, *, pool_size: int = 5, statement_timeout_ms: int = 30_000
) -> AsyncEngine:
    """An asyncio engine (psycopg 3) with bounded waits for connections and statements."""
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=CONNECT_TIMEOUT_SECONDS,
        pool_pre_ping=False,
        connect_args=_connect_args(statement_timeout_ms),
    )


def make_engine(url: str, *, pool_size: int = 5, statement_timeout_ms: int = 30_000) -> Engine:
    """A blocking engine with the same limits, for synchronous services and scripts."""
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=CONNECT_TIMEOUT_SECONDS,
        connect_args=_connect_args(statement_timeout_ms),
    )
