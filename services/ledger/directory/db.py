"""Transactions whose database failures arrive as directory errors.

Connection-level trouble (refused, dropped, pool or statement timeout) becomes
:class:`Unavailable` so callers retry; constraint violations become the precise client error
(unknown referenced id, email taken, bad value). Anything else is a bug and propagates.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ledger.directory.errors import (
    AlreadyExists,
    DirectoryError,
    InvalidArgument,
    NotFound,
    Unavailable,
)

_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    OSError,
    TimeoutError,
)


def _integrity_error(error: sa_exc.IntegrityError) -> DirectoryError:
    diag = getattr(error.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or ""
    detail = getattr(diag, "message_detail", None) or ""
    if constraint.endswith("_user_id_fkey"):
        return NotFound(f"unknown user: {detail}".strip())
    if constraint.endswith("_tenant_id_fkey"):
        return NotFound(f"unknown tenant: {detail}".strip())
    if constraint == "users_email_unique":
        return AlreadyExists(f"email already belongs to another user: {detail}".strip())
    return InvalidArgument(f"rejected by the database ({constraint or 'constraint'}): {detail}")


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One committed transaction; rolled back on any error, errors translated."""
    try:
        async with engine.begin() as conn:
            yield conn
    except DirectoryError:
        raise
    except sa_exc.IntegrityError as exc:
        raise _integrity_error(exc) from exc
    except sa_exc.DataError as exc:
        raise InvalidArgument(f"value rejected by the database: {exc.orig}") from exc
    except _UNAVAILABLE as exc:
        raise Unavailable("directory database unavailable, retry later") from exc
