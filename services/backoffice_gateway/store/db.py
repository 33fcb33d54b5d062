"""The gateway's database handle: one blocking engine per process (Flask is synchronous).

The engine is made lazily so that gunicorn's pre-fork master never holds connections its
workers would inherit.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from services.common.db import make_engine


class Store:
    """Opens sessions on the gateway's schema; the repository functions take a Session."""

    def __init__(self, database_url: str, pool_size: int = 5) -> None:
        self._url = database_url
        self._pool_size = pool_size
        self._engine: Engine | None = None
        self._factory: sessionmaker[Session] | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = make_engine(
                        self._url, pool_size=self._pool_size, statement_timeout_ms=5_000
                    )
                    self._factory = sessionmaker(self._engine, expire_on_commit=False)
        return self._engine

    def session(self) -> Session:
        """A new ORM session; use as a context manager and commit explicitly."""
        self.engine  # noqa: B018 - builds the factory on first use
        assert self._factory is not None
        return self._factory()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._factory = None
