"""The host application's writes: idempotent upserts keyed by its ids, append-only logins.

Each function runs inside the caller's transaction and returns the stored row, so a retried
call answers exactly like the first one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.directory.errors import FailedPrecondition, NotFound
from services.ledger.directory.inputs import (
    LoginInput,
    MembershipInput,
    SessionInput,
    TenantInput,
    UserInput,
)
from services.ledger.directory.tables import logins, memberships, sessions, tenants, users

Row = Any  # sqlalchemy Row with the table's columns


async def upsert_tenant(conn: AsyncConnection, data: TenantInput) -> Row:
    """Insert or update; a soft-deleted tenant stays deleted unless ``undelete`` is set.

    Staying deleted (instead of failing) keeps a late retry of an old upsert harmless, and the
    returned row still carries ``deleted_at`` so the caller can see it.
    """
    stmt = pg_insert(tenants).values(
        tenant_id=data.tenant_id,
        name=data.name,
        plan_hint=data.plan_hint,
        created_at=data.created_at if data.created_at is not None else func.now(),
        updated_at=func.now(),
        deleted_at=None,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[tenants.c.tenant_id],
        set_={
            "name": stmt.excluded.name,
            "plan_hint": func.coalesce(stmt.excluded.plan_hint, tenants.c.plan_hint),
            "created_at": (
                stmt.excluded.created_at if data.created_at is not None else tenants.c.created_at
            ),
            "updated_at": func.now(),
            "deleted_at": None if data.undelete else tenants.c.deleted_at,
        },
    )
    return (await conn.execute(stmt.returning(*tenants.c))).one()


async def soft_delete_tenant(conn: AsyncConnection, tenant_id: str, at: datetime | None) -> Row:
    """Set ``deleted_at`` once; repeating the call keeps the first time."""
    when = at if at is not None else func.now()
    row = (
        await conn.execute(
            update(tenants)
            .where(tenants.c.tenant_id == tenant_id)
            .values(
                deleted_at=func.coalesce(tenants.c.deleted_at, when),
                updated_at=case(
                    (tenants.c.deleted_at.is_(None), func.now()), else_=tenants.c.updated_at
                ),
            )
            .returning(*tenants.c)
        )
    ).first()
    if row is None:
        raise NotFound(f"tenant {tenant_id!r} is not in the directory")
    return row


async def upsert_user(conn: AsyncConnection, data: UserInput) -> Row:
    """Insert or update; an email held by another user id raises AlreadyExists (via db.py)."""
    stmt = pg_insert(users).values(
        user_id=data.user_id,
        email=data.email,
        first_name=data.first_name,
        last_name=data.last_name,
        created_at=data.created_at if data.created_at is not None else func.now(),
        updated_at=func.now(),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[users.c.user_id],
        set_={
            "email": stmt.excluded.email,
            "first_name": stmt.excluded.first_name,
            "last_name": stmt.excluded.last_name,
            "created_at": (
                stmt.excluded.created_at if data.created_at is not None else users.c.created_at
            ),
            "updated_at": func.now(),
        },
    )
    return (await conn.execute(stmt.returning(*users.c))).one()


async def upsert_membership(conn: AsyncConnection, data: MembershipInput) -> Row:
    """Insert or update the (user, tenant) pair; unknown user or tenant raise NotFound."""
    stmt = pg_insert(memberships).values(
        user_id=data.user_id,
        tenant_id=data.tenant_id,
        role=data.role,
        status=data.status,
        created_at=func.now(),
        updated_at=func.now(),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[memberships.c.user_id, memberships.c.tenant_id],
        set_={
            "role": stmt.excluded.role,
            "status": stmt.excluded.status,
            "updated_at": func.now(),
        },
    )
    await conn.execute(stmt)
    return (
        await conn.execute(
            membership_rows().where(
                memberships.c.user_id == data.user_id, memberships.c.tenant_id == data.tenant_id
            )
        )
    ).one()


def membership_rows() -> Any:
    """Memberships with their tenant's name and deletion time (for every reader)."""
    return select(
        *memberships.c,
        tenants.c.name.label("tenant_name"),
        tenants.c.deleted_at.label("tenant_deleted_at"),
    ).select_from(memberships.join(tenants, tenants.c.tenant_id == memberships.c.tenant_id))


async def record_login(conn: AsyncConnection, data: LoginInput) -> tuple[Row, bool]:
    """Append a login; with a login_id already stored, return that row and ``duplicate``."""
    stmt = (
        pg_insert(logins)
        .values(
            login_id=data.login_id,
            user_id=data.user_id,
            tenant_id=data.tenant_id,
            at=data.at,
            method=data.method,
            outcome=data.outcome,
            ip=data.ip,
            user_agent=data.user_agent,
            recorded_at=func.now(),
        )
        .on_conflict_do_nothing(index_elements=[logins.c.login_id])
        .returning(*logins.c)
    )
    row = (await conn.execute(stmt)).first()
    if row is not None:
        return row, False
    existing = (
        await conn.execute(select(*logins.c).where(logins.c.login_id == data.login_id))
    ).one()
    return existing, True


async def record_session(conn: AsyncConnection, data: SessionInput) -> Row:
    """Create or refresh a session; out-of-order refreshes never move it back in time.

    ``last_seen_at`` only grows and ``started_at`` only shrinks; ip and user agent follow the
    newest sighting. A revoked session stays revoked. Reusing the id for another user is
    refused rather than silently moving the session.
    """
    stmt = pg_insert(sessions).values(
        session_id=data.session_id,
        user_id=data.user_id,
        started_at=data.started_at,
        last_seen_at=data.last_seen_at,
        ip=data.ip,
        user_agent=data.user_agent,
    )
    newer = stmt.excluded.last_seen_at >= sessions.c.last_seen_at
    stmt = stmt.on_conflict_do_update(
        index_elements=[sessions.c.session_id],
        set_={
            "started_at": func.least(sessions.c.started_at, stmt.excluded.started_at),
            "last_seen_at": func.greatest(sessions.c.last_seen_at, stmt.excluded.last_seen_at),
            "ip": case(
                (newer, func.coalesce(stmt.excluded.ip, sessions.c.ip)), else_=sessions.c.ip
            ),
            "user_agent": case(
                (newer & (stmt.excluded.user_agent != ""), stmt.excluded.user_agent),
                else_=sessions.c.user_agent,
            ),
        },
        where=sessions.c.user_id == stmt.excluded.user_id,
    )
    row = (await conn.execute(stmt.returning(*sessions.c))).first()
    if row is None:
        raise FailedPrecondition(
            f"session {data.session_id!r} belongs to another user than {data.user_id!r}"
        )
    return row


async def revoke_session(
    conn: AsyncConnection, session_id: str, at: datetime | None, reason: str
) -> Row:
    """Revoke once: a repeated revocation keeps the first time and reason."""
    when = at if at is not None else func.now()
    row = (
        await conn.execute(
            update(sessions)
            .where(sessions.c.session_id == session_id)
            .values(
                revoked_at=func.coalesce(sessions.c.revoked_at, when),
                revocation_reason=case(
                    (sessions.c.revoked_at.is_(None), reason), else_=sessions.c.revocation_reason
                ),
            )
            .returning(*sessions.c)
        )
    ).first()
    if row is None:
        raise NotFound(f"session {session_id!r} is not in the directory")
    return row
