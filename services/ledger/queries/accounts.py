"""Account reads: the searchable, sortable list and one account's detail.

Everything comes from ``ledger.query_accounts`` (migration 0004, kept by triggers), one row per
account, so a page is an index range scan plus a count over at most the live accounts.
Soft-deleted accounts (tenant deleted, or every Stripe customer deleted when there is no
tenant) never appear in lists or counts; ``GetAccount`` still shows them, with deleted_at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.util import ClauseAdapter

from services.ledger.directory.reads import LOGIN_WINDOW, escape_like
from services.ledger.directory.tables import logins, memberships
from services.ledger.queries.errors import NotFound
from services.ledger.queries.fx import Fx
from services.ledger.queries.inputs import AccountListQuery, AccountSort
from services.ledger.queries.tables import query_accounts as qa
from services.ledger.queries.tables import query_invoice_rows as qir
from services.ledger.queries.tables import subscriptions

Row = Any


def live_account() -> ColumnElement[bool]:
    return qa.c.deleted_at.is_(None)


def mrr_platform(fx: Fx) -> ColumnElement[Any]:
    """Committed MRR in platform minor units, exact numeric; NULL without a rate."""
    factors = {cur: fx.factor(cur) for cur in sorted({fx.platform, *fx.rates})}
    whens = {cur: literal(f) for cur, f in factors.items() if f is not None}
    return qa.c.committed_mrr * case(whens, value=qa.c.currency, else_=None)


def sort_key(sort: AccountSort, fx: Fx) -> ColumnElement[Any]:
    """The whitelisted sort expressions (the only ones ever put in ORDER BY)."""
    if sort is AccountSort.NAME:
        return func.lower(qa.c.name)
    if sort is AccountSort.PLAN:
        return qa.c.plan
    if sort is AccountSort.STATUS:
        return qa.c.status
    if sort is AccountSort.RENEWAL:
        return qa.c.renewal_at
    if sort is AccountSort.CREATED:
        return qa.c.created_at
    return mrr_platform(fx)


def _after(key: ColumnElement[Any], after: tuple[object, str], descending: bool) -> Any:
    """Rows after ``after`` in ``ORDER BY key, account_id`` ASC or DESC, NULLS LAST both ways
    (an account without the value, e.g. no MRR, is never on top), so NULL sort values page
    correctly too."""
    value, account_id = after
    ident = qa.c.account_id
    if value is None:
        return and_(key.is_(None), ident < account_id if descending else ident > account_id)
    bound = tuple_(literal(value), literal(account_id))
    return or_(tuple_(key, ident) < bound if descending else tuple_(key, ident) > bound,
               key.is_(None))


def _filters(q: AccountListQuery) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = [live_account()]
    if q.search:
        pattern = f"%{escape_like(q.search)}%"
        filters.append(
            or_(
                qa.c.name.ilike(pattern, escape="\\"),
                qa.c.email.ilike(pattern, escape="\\"),
                qa.c.account_id.ilike(pattern, escape="\\"),
            )
        )
    if q.plans:
        filters.append(qa.c.plan.in_(q.plans))
    if q.statuses:
        filters.append(qa.c.status.in_(q.statuses))
    if q.drift_detected is not None:
        filters.append(qa.c.drift_detected.is_(q.drift_detected))
    if q.unsynced is not None:
        filters.append(qa.c.unsynced.is_(q.unsynced))
    return filters


async def list_accounts(
    conn: AsyncConnection, q: AccountListQuery, fx: Fx
) -> tuple[list[Row], int]:
    """Up to ``page_size + 1`` rows (with their ``sort_value``) and the total match count."""
    key = sort_key(q.sort, fx)
    filters = _filters(q)
    page_filters = list(filters)
    if q.after is not None:
        page_filters.append(_after(key, q.after, q.descending))
    order = (
        [key.desc().nulls_last(), qa.c.account_id.desc()]
        if q.descending
        else [key.asc().nulls_last(), qa.c.account_id.asc()]
    )
    columns = [*qa.c, key.label("sort_value"), mrr_platform(fx).label("mrr_platform")]
    if q.search:
        columns, page_filters, order = _from_matches(filters, columns, page_filters, order)
    rows = (
        await conn.execute(
            select(*columns)
            .where(and_(true(), *page_filters))
            .order_by(*order)
            .limit(q.page_size + 1)
        )
    ).all()
    total = (
        await conn.execute(select(func.count()).select_from(qa).where(and_(true(), *filters)))
    ).scalar_one()
    return list(rows), int(total)


def _from_matches(
    filters: list[ColumnElement[bool]], *parts: list[Any]
) -> tuple[list[Any], ...]:
    """The page's columns, filters and order rewritten over a MATERIALIZED set of the matches.

    The trigram indexes (migration 0012) find a search's matches in a few milliseconds, but
    the planner underestimates how many a substring matches and walks the sort's index
    instead, filtering row by row until the page is full (118 ms at 200,000 accounts for a
    search matching 780). Materialising the matches first leaves it only the bitmap scans
    and a sort of the matches. Same rows, same order: only where they are read from changes.
    """
    matches = select(qa).where(and_(true(), *filters)).cte("matches").prefix_with("MATERIALIZED")
    adapter = ClauseAdapter(matches)
    return tuple([adapter.traverse(element) for element in part] for part in parts)


@dataclass(frozen=True, slots=True)
class AccountDetailRows:
    account: Row
    subscriptions: list[Row]
    revenue_by_currency: list[tuple[str, int]]
    users_total: int
    users_active: int


def _live_subscription() -> ColumnElement[bool]:
    # the ended rule (services.ledger.domain.rules.is_ended), from its SQL twin
    ended = func.ledger.is_ended(subscriptions.c.status, subscriptions.c.ended_at, type_=Boolean)
    return ended.is_(False)


async def get_account(conn: AsyncConnection, account_id: str, as_of: datetime) -> AccountDetailRows:
    account = (
        await conn.execute(
            select(*qa.c, literal(None).label("mrr_platform")).where(qa.c.account_id == account_id)
        )
    ).first()
    if account is None:
        raise NotFound(f"account {account_id!r} is not in the ledger")
    customers = list(account.stripe_customer_ids or [])
    subs = (
        await conn.execute(
            select(*subscriptions.c, _live_subscription().label("live"))
            .where(subscriptions.c.stripe_customer_id.in_(customers))
            .order_by(
                _live_subscription().desc(),
                subscriptions.c.state_event_created.desc(),
                subscriptions.c.subscription_id.desc(),
            )
        )
    ).all()
    revenue = (
        await conn.execute(
            select(qir.c.currency, func.sum(qir.c.revenue_amount))
            .where(
                qir.c.stripe_customer_id.in_(customers),
                qir.c.revenue_amount.is_not(None),
                qir.c.revenue_at <= as_of,
            )
            .group_by(qir.c.currency)
            .order_by(qir.c.currency)
        )
    ).all()
    users_total = users_active = 0
    tenant_id = account.tenant_id
    if tenant_id:
        active_login = exists(
            select(literal(1)).where(
                logins.c.user_id == memberships.c.user_id,
                logins.c.outcome == "success",
                logins.c.at >= as_of - LOGIN_WINDOW,
                logins.c.at <= as_of,
            )
        )
        counts = (
            await conn.execute(
                select(
                    func.count(),
                    func.count().filter(active_login),
                ).where(memberships.c.tenant_id == tenant_id)
            )
        ).one()
        users_total, users_active = int(counts[0]), int(counts[1])
    return AccountDetailRows(
        account=account,
        subscriptions=list(subs),
        revenue_by_currency=[(str(c), int(a)) for c, a in revenue if c is not None],
        users_total=users_total,
        users_active=users_active,
    )


async def account_customers(conn: AsyncConnection, account_id: str) -> tuple[list[str], str]:
    """The account's Stripe customers and id (NOT_FOUND when unknown)."""
    row = (
        await conn.execute(
            select(qa.c.stripe_customer_ids, qa.c.account_id).where(qa.c.account_id == account_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"account {account_id!r} is not in the ledger")
    return list(row.stripe_customer_ids or []), str(row.account_id)


__all__ = [
    "AccountDetailRows",
    "account_customers",
    "get_account",
    "list_accounts",
    "live_account",
    "mrr_platform",
]
