"""The back-office's reads: user search and paging, one user's history, dashboard counts.

Soft-deleted tenants vanish from lists and counts but keep their history: a user is *listed*
when they have no membership at all or at least one in a live tenant, so a user whose only
tenants were deleted disappears, while ``GetUser`` still shows everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, or_, select, tuple_
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.directory.errors import NotFound
from services.ledger.directory.inputs import UserListQuery, UserSortKey
from services.ledger.directory.tables import logins, memberships, sessions, tenants, users
from services.ledger.directory.writes import membership_rows

LOGIN_WINDOW = timedelta(days=30)
SESSION_ACTIVITY_WINDOW = timedelta(hours=24)
MAX_RECENT_LOGINS = 500
MAX_SESSIONS = 200

Row = Any


def _live_membership(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """EXISTS a membership of the outer user in a tenant that is not soft-deleted."""
    return exists(
        select(literal(1))
        .select_from(memberships.join(tenants, tenants.c.tenant_id == memberships.c.tenant_id))
        .where(
            memberships.c.user_id == users.c.user_id,
            tenants.c.deleted_at.is_(None),
            *conditions,
        )
    )


def listed_user() -> ColumnElement[bool]:
    """The outer user row belongs in lists and counts (see the module docstring)."""
    any_membership = exists(select(literal(1)).where(memberships.c.user_id == users.c.user_id))
    return or_(~any_membership, _live_membership())


def escape_like(text: str) -> str:
    """Make user input literal inside a LIKE pattern (``\\`` is the escape character)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _search(text: str) -> ColumnElement[bool]:
    pattern = f"%{escape_like(text)}%"
    full_name = users.c.first_name + " " + users.c.last_name
    return or_(
        users.c.email.ilike(pattern, escape="\\"),
        users.c.first_name.ilike(pattern, escape="\\"),
        users.c.last_name.ilike(pattern, escape="\\"),
        full_name.ilike(pattern, escape="\\"),
        _live_membership(tenants.c.name.ilike(pattern, escape="\\")),
    )


def _sort_columns(sort: UserSortKey) -> tuple[Any, Any]:
    # user_id breaks ties so the keyset is a total order (created_at repeats easily).
    if sort is UserSortKey.CREATED_AT:
        return users.c.created_at, users.c.user_id
    return users.c.email, users.c.user_id


async def list_users(conn: AsyncConnection, q: UserListQuery) -> tuple[list[Row], int]:
    """One page of listed users (``page_size + 1`` rows fetched to know if more follow).

    Returns up to ``page_size + 1`` rows and the total matching count.
    """
    filters: list[ColumnElement[bool]] = [listed_user()]
    if q.tenant_id is not None:
        filters.append(_live_membership(memberships.c.tenant_id == q.tenant_id))
    if q.search:
        filters.append(_search(q.search))
    first, second = _sort_columns(q.sort)
    page_filters = list(filters)
    if q.after is not None:
        key = tuple_(first, second)
        bound = tuple_(*q.after)
        page_filters.append(key < bound if q.descending else key > bound)
    order = [first.desc(), second.desc()] if q.descending else [first.asc(), second.asc()]

    tenant_names = (
        select(func.array_agg(aggregate_order_by(tenants.c.name, tenants.c.name)))
        .select_from(memberships.join(tenants, tenants.c.tenant_id == memberships.c.tenant_id))
        .where(memberships.c.user_id == users.c.user_id, tenants.c.deleted_at.is_(None))
        .scalar_subquery()
    )
    last_login = (
        select(func.max(logins.c.at))
        .where(logins.c.user_id == users.c.user_id, logins.c.outcome == "success")
        .scalar_subquery()
    )
    rows = (
        await conn.execute(
            select(
                *users.c,
                tenant_names.label("tenant_names"),
                last_login.label("last_login_at"),
            )
            .where(and_(*page_filters))
            .order_by(*order)
            .limit(q.page_size + 1)
        )
    ).all()
    total = (
        await conn.execute(select(func.count()).select_from(users).where(and_(*filters)))
    ).scalar_one()
    return list(rows), int(total)


@dataclass(frozen=True, slots=True)
class UserDetail:
    """Everything GetUser shows about one user."""

    user: Row
    memberships: list[Row]
    recent_logins: list[Row]
    recent_logins_truncated: bool
    sessions: list[Row]
    sessions_truncated: bool
    as_of: datetime


async def get_user(conn: AsyncConnection, user_id: str, as_of: datetime) -> UserDetail:
    """The user with all memberships, logins in [as_of - 30 days, as_of], and sessions."""
    user = (await conn.execute(select(*users.c).where(users.c.user_id == user_id))).first()
    if user is None:
        raise NotFound(f"user {user_id!r} is not in the directory")
    member_rows = (
        await conn.execute(
            membership_rows()
            .where(memberships.c.user_id == user_id)
            .order_by(tenants.c.name, memberships.c.tenant_id)
        )
    ).all()
    login_rows = (
        await conn.execute(
            select(*logins.c)
            .where(
                logins.c.user_id == user_id,
                logins.c.at >= as_of - LOGIN_WINDOW,
                logins.c.at <= as_of,
            )
            .order_by(logins.c.at.desc(), logins.c.seq.desc())
            .limit(MAX_RECENT_LOGINS + 1)
        )
    ).all()
    session_rows = (
        await conn.execute(
            select(*sessions.c)
            .where(sessions.c.user_id == user_id)
            .order_by(sessions.c.last_seen_at.desc(), sessions.c.session_id)
            .limit(MAX_SESSIONS + 1)
        )
    ).all()
    return UserDetail(
        user=user,
        memberships=list(member_rows),
        recent_logins=list(login_rows[:MAX_RECENT_LOGINS]),
        recent_logins_truncated=len(login_rows) > MAX_RECENT_LOGINS,
        sessions=list(session_rows[:MAX_SESSIONS]),
        sessions_truncated=len(session_rows) > MAX_SESSIONS,
        as_of=as_of,
    )


def session_is_active(row: Row, as_of: datetime) -> bool:
    """The 24-hour rule, the same one :func:`directory_stats` counts with, in Python."""
    return (
        row.started_at <= as_of
        and (row.revoked_at is None or row.revoked_at > as_of)
        and as_of - SESSION_ACTIVITY_WINDOW < row.last_seen_at <= as_of
    )


@dataclass(frozen=True, slots=True)
class DirectoryCounts:
    active_users: int
    active_sessions: int
    total_users: int
    total_tenants: int


async def directory_stats(
    conn: AsyncConnection, since: datetime, until: datetime, as_of: datetime
) -> DirectoryCounts:
    """Dashboard counts, in one statement so they come from one snapshot."""
    login_tenant = tenants.alias("login_tenant")
    active_users = (
        select(func.count(func.distinct(logins.c.user_id)))
        .select_from(
            logins.join(users, users.c.user_id == logins.c.user_id).outerjoin(
                login_tenant, login_tenant.c.tenant_id == logins.c.tenant_id
            )
        )
        .where(
            logins.c.outcome == "success",
            logins.c.at >= since,
            logins.c.at < until,
            login_tenant.c.deleted_at.is_(None),  # also true when the login has no tenant
            listed_user(),
        )
        .scalar_subquery()
    )
    active_sessions = (
        select(func.count())
        .select_from(sessions.join(users, users.c.user_id == sessions.c.user_id))
        .where(
            sessions.c.started_at <= as_of,
            or_(sessions.c.revoked_at.is_(None), sessions.c.revoked_at > as_of),
            sessions.c.last_seen_at > as_of - SESSION_ACTIVITY_WINDOW,
            sessions.c.last_seen_at <= as_of,
            listed_user(),
        )
        .scalar_subquery()
    )
    total_users = select(func.count()).select_from(users).where(listed_user()).scalar_subquery()
    total_tenants = (
        select(func.count())
        .select_from(tenants)
        .where(tenants.c.deleted_at.is_(None))
        .scalar_subquery()
    )
    row = (
        await conn.execute(select(active_users, active_sessions, total_users, total_tenants))
    ).one()
    return DirectoryCounts(*(int(value) for value in row))
