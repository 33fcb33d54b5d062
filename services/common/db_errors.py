"""What a database exception means for the caller: "retry later" or "your value is refused".

Both questions are asked by the webhook path, the gRPC error mapping and the consumers, so
they are answered once, here.
"""

from __future__ import annotations

import psycopg
import sqlalchemy.exc


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL could not be reached or the connection broke: retry later."""


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is away rather than that a statement was refused."""
    if isinstance(
        exc,
        DatabaseUnavailable
        | sqlalchemy.exc.TimeoutError
        | sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError,
    ):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return not isinstance(exc, psycopg.errors.QueryCanceled)
    return isinstance(exc, OSError | ConnectionError)


def refused_value(exc: BaseException) -> bool:
    """Whether ``exc`` says that a value was refused: SQLSTATE class 22 ("data exception":
    NUL in text, numeric out of range, bad datetime ...) or text the driver cannot encode.

    Every statement is parametrised, so such a value came from the request or event.
    """
    return isinstance(exc, psycopg.DataError | UnicodeEncodeError | sqlalchemy.exc.DataError)
