"""Account reads: the searchable, sortable list and one account's detail.

Everything comes from ``ledger.query_accounts`` (migration 0004, kept by triggers), one row per
account, so a page is an index range scan. The total comes from ``query_account_facets``
(migration 0014, live accounts per plan, status and flags), or, for a search, from the trigram
indexes counting up to ``SEARCH_COUNT_CAP`` (then flagged as a lower bound). The MRR sort, an
expression of the query's exchange rates, is a merge of one index walk per currency; a plan or
status sort under a plan / status filter a merge of one walk per (plan, status) pair
(migration 0016), and a filter leaving few matches reads and sorts them.
Soft-deleted accounts (tenant deleted, or every Stripe customer deleted when there is no
tenant) never appear in lists or counts; ``GetAccount`` still shows them, with deleted_at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Numeric,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    text,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.util import ClauseAdapter

from services.ledger.directory.reads import LOGIN_WINDOW, escape_like
from services.ledger.directory.tables import logins, memberships
from services.ledger.queries.errors import NotFound
from services.ledger.queries.fx import Fx
from services.ledger.queries.inputs import AccountListQuery, AccountSort
from services.ledger.queries.tables import query_account_facets as qaf
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


#: Sort keys query_refresh_accounts never leaves NULL (name falls back to the account id,
#: plan and status to ''): ordered without NULLS LAST, which changes no order but lets a
#: descending page walk their (key, account_id) index backwards instead of sorting every match.
_NEVER_NULL = frozenset({AccountSort.NAME, AccountSort.PLAN, AccountSort.STATUS})


def _order(sort: AccountSort, key: ColumnElement[Any], descending: bool) -> list[Any]:
    """ORDER BY key, account_id in the direction asked, NULLS LAST both ways."""
    ident = qa.c.account_id
    if sort in _NEVER_NULL:
        return [key.desc(), ident.desc()] if descending else [key.asc(), ident.asc()]
    if descending:
        return [key.desc().nulls_last(), ident.desc()]
    return [key.asc().nulls_last(), ident.asc()]


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
    # = rather than IS (the columns are NOT NULL, so the same rows): "flag = true" is what
    # lets the planner use the partial indexes on the rare flags (migration 0014)
    if q.drift_detected is not None:
        filters.append(qa.c.drift_detected == q.drift_detected)
    if q.unsynced is not None:
        filters.append(qa.c.unsynced == q.unsynced)
    return filters


#: A search's total is counted up to this many matches; beyond it the answer says "at least"
#: (an operator narrows a search that broad rather than reading its exact size).
SEARCH_COUNT_CAP = 10_000


async def list_accounts(
    conn: AsyncConnection, q: AccountListQuery, fx: Fx
) -> tuple[list[Row], int, bool]:
    """Up to ``page_size + 1`` rows (with their ``sort_value``), the total match count and
    whether that total is only a lower bound (a search matching more than the cap).

    How the page is read depends on what the filters leave (migration 0016): nothing at all
    (the facets say so) reads no row; few matches are read and sorted; a status sort filtered
    to two plans or more (a plan sort filtered to two statuses or more) merges one walk per
    existing (plan, status) pair;
    otherwise the sort's index is walked (per currency for the MRR sort; for a plan or status
    sort whose other column is filtered to one value, ``query_accounts_facet``)."""
    filters = _filters(q)
    total, capped = await count_accounts(conn, q, filters)
    if q.search:
        # A search matching few accounts reads a materialised set of them; one matching more
        # than the cap is dense enough that walking the sort's index finds a page at once.
        rows = await account_page(conn, q, fx, materialise=not capped)
    elif total == 0:
        rows = []
    elif _filtered(q) and await _few_matches(conn, q, total):
        rows = await account_page(conn, q, fx, materialise=True)
    elif _pairs_needed(q):
        rows = await _facet_page(conn, q, fx, filters)
    elif q.sort is AccountSort.MRR:
        rows = await _mrr_page(conn, q, fx, filters)
    else:
        rows = await account_page(conn, q, fx, materialise=False)
    return rows, total, capped


#: How much cheaper one row of a read-and-sort of the matches is than one row of an index walk
#: that fetches each row to test the filters, taken as even. Measured at 200,000 accounts
#: (EXPLAIN ANALYZE, loaded machine): the 3,488 drifting accounts read through their partial
#: index and sorted 11-15 ms, the created-at walk meeting 51 of them after about 2,900 rows
#: 7-8 ms.
_SET_READ_ADVANTAGE = 1


def _pairs_needed(q: AccountListQuery) -> bool:
    """Whether a plan or status sort needs the pair merge: only when the other column (status
    or plan) is filtered to two values or more. Unfiltered, the sort's index walk tests
    nothing on it; filtered to one value, ``query_accounts_facet`` with that value fixed is
    already in the sort's order and the planner walks it (a skip scan over the plans for the
    plan sort) without reading a row the filter drops."""
    if q.sort is AccountSort.STATUS:
        return len(q.plans) > 1
    if q.sort is AccountSort.PLAN:
        return len(q.statuses) > 1
    return False


def _filtered(q: AccountListQuery) -> bool:
    return bool(q.plans or q.statuses) or q.drift_detected is not None or q.unsynced is not None


async def _few_matches(conn: AsyncConnection, q: AccountListQuery, total: int) -> bool:
    """Whether reading and sorting the ``total`` matches is cheaper than walking the sort's
    index: a walk meets ``page_size + 1`` matches after about ``(page_size + 1) * live /
    total`` rows when the matches are spread along the sort key, the set read costs ``total``
    rows, so the set is read when ``total ** 2 < advantage * (page_size + 1) * live``: for a
    page of 50, up to 714 matches at 10,000 live accounts, 3,194 at 200,000 (the counts both
    from ``query_account_facets``)."""
    live = int(
        (await conn.execute(select(func.coalesce(func.sum(qaf.c.n), 0)))).scalar_one()
    )
    return total * total < _SET_READ_ADVANTAGE * (q.page_size + 1) * live


def _facet_filters(q: AccountListQuery) -> list[ColumnElement[bool]]:
    """The list's filters but a search, over ``query_account_facets``."""
    where: list[ColumnElement[bool]] = []
    if q.plans:
        where.append(qaf.c.plan.in_(q.plans))
    if q.statuses:
        where.append(qaf.c.status.in_(q.statuses))
    if q.drift_detected is not None:
        where.append(qaf.c.drift_detected.is_(q.drift_detected))
    if q.unsynced is not None:
        where.append(qaf.c.unsynced.is_(q.unsynced))
    return where


async def count_accounts(
    conn: AsyncConnection, q: AccountListQuery, filters: list[ColumnElement[bool]]
) -> tuple[int, bool]:
    """The total of the list and whether it is a lower bound.

    Without a search the live accounts are counted per (plan, status, drift, unsynced) in
    ``query_account_facets`` (migration 0014), a few dozen rows whatever the size, so any
    combination of those filters is an exact sum. A search's matches are counted up to
    ``SEARCH_COUNT_CAP`` on the trigram indexes."""
    if q.search:
        matches = select(literal(1)).where(and_(true(), *filters)).limit(SEARCH_COUNT_CAP + 1)
        n = int(
            (await conn.execute(select(func.count()).select_from(matches.subquery()))).scalar_one()
        )
        return min(n, SEARCH_COUNT_CAP), n > SEARCH_COUNT_CAP
    where = _facet_filters(q)
    total = (
        await conn.execute(select(func.coalesce(func.sum(qaf.c.n), 0)).where(and_(true(), *where)))
    ).scalar_one()
    return int(total), False


async def count_accounts_by_rows(conn: AsyncConnection, q: AccountListQuery) -> int:
    """The exact total counted row by row (the definition ``count_accounts`` must equal)."""
    return int(
        (
            await conn.execute(
                select(func.count()).select_from(qa).where(and_(true(), *_filters(q)))
            )
        ).scalar_one()
    )


async def account_page(
    conn: AsyncConnection, q: AccountListQuery, fx: Fx, *, materialise: bool
) -> list[Row]:
    """The page as one query ordered by the sort expression (for the MRR sort, the
    definition ``_mrr_page`` must equal; tests compare the two)."""
    key = sort_key(q.sort, fx)
    filters = _filters(q)
    page_filters = list(filters)
    if q.after is not None:
        page_filters.append(_after(key, q.after, q.descending))
    order = _order(q.sort, key, q.descending)
    columns = [*qa.c, key.label("sort_value"), mrr_platform(fx).label("mrr_platform")]
    if materialise:
        columns, page_filters, order = _from_matches(filters, columns, page_filters, order)
    rows = (
        await conn.execute(
            select(*columns)
            .where(and_(true(), *page_filters))
            .order_by(*order)
            .limit(q.page_size + 1)
        )
    ).all()
    return list(rows)


_NO_MRR = cast(null(), Numeric)  # typed, so the UNION ALL with the numeric keys resolves

_LIVE_CURRENCIES = text(
    """
    WITH RECURSIVE c AS (
        (SELECT currency FROM ledger.query_accounts
         WHERE deleted_at IS NULL AND currency IS NOT NULL ORDER BY currency LIMIT 1)
        UNION ALL
        SELECT (SELECT a.currency FROM ledger.query_accounts a
                WHERE a.deleted_at IS NULL AND a.currency > c.currency
                ORDER BY a.currency LIMIT 1)
        FROM c WHERE c.currency IS NOT NULL
    )
    SELECT currency FROM c WHERE currency IS NOT NULL
    """
)


async def _mrr_page(
    conn: AsyncConnection, q: AccountListQuery, fx: Fx, filters: list[ColumnElement[bool]]
) -> list[Row]:
    """The MRR-sorted page as a merge of one index walk per currency (migration 0014).

    Within a currency the platform MRR is ``committed_mrr`` times the currency's positive
    factor, so ``(currency, committed_mrr, account_id)`` holds each currency's order and the
    page is the first ``page_size + 1`` of the merged walks; the accounts without a platform
    MRR (no currency, or one without a rate) follow, by account id, from
    ``(currency, account_id)``. The currencies come from a skip scan of that index (one probe
    per currency). A page costs O(currencies x page) index reads at any size."""
    limit = q.page_size + 1
    desc = q.descending
    ident = qa.c.account_id
    in_null_tail = q.after is not None and q.after[0] is None
    currencies = [str(r.currency) for r in await conn.execute(_LIVE_CURRENCIES)]
    branches = []
    for currency in currencies:
        factor = fx.factor(currency)
        if factor is None or in_null_tail:
            continue
        key = qa.c.committed_mrr * literal(factor)
        where = [*filters, qa.c.currency == currency]
        if q.after is not None:
            value, after_id = q.after
            exact = Fraction(Decimal(str(value))) / Fraction(factor)
            bound = tuple_(literal(value), literal(after_id))
            if desc:  # m * f <= v  <=>  m <= floor(v / f): the index range, then the exact test
                where += [qa.c.committed_mrr <= math.floor(exact), tuple_(key, ident) < bound]
            else:
                where += [qa.c.committed_mrr >= math.ceil(exact), tuple_(key, ident) > bound]
        order = [qa.c.committed_mrr, ident]
        branches.append(
            select(*qa.c, key.label("sort_value"), key.label("mrr_platform"))
            .where(*where)
            .order_by(*(c.desc() if desc else c.asc() for c in order))
            .limit(limit)
        )
    unrated: list[ColumnElement[bool]] = [
        qa.c.currency == c for c in currencies if fx.factor(c) is None
    ]
    for which in [*unrated, qa.c.currency.is_(None)]:
        where = [*filters, which]
        if in_null_tail and q.after is not None:
            where.append(ident < q.after[1] if desc else ident > q.after[1])
        branches.append(
            select(*qa.c, _NO_MRR.label("sort_value"), _NO_MRR.label("mrr_platform"))
            .where(*where)
            .order_by(ident.desc() if desc else ident.asc())
            .limit(limit)
        )
    merged = union_all(*(select(b.subquery()) for b in branches)).subquery("merged")
    order_by = (
        [merged.c.sort_value.desc().nulls_last(), merged.c.account_id.desc()]
        if desc
        else [merged.c.sort_value.asc().nulls_last(), merged.c.account_id.asc()]
    )
    return list((await conn.execute(select(merged).order_by(*order_by).limit(limit))).all())


async def _facet_page(
    conn: AsyncConnection, q: AccountListQuery, fx: Fx, filters: list[ColumnElement[bool]]
) -> list[Row]:
    """The plan- or status-sorted page of a plan / status filter as a merge of one walk per
    (plan, status) pair that has matching accounts (migration 0016).

    Walking the sort's index and testing the other filter row by row crosses every row of a
    sort value the filter leaves empty (at the bench's 200,000 accounts, every ``past_due``
    account when no ``past_due`` account has the filtered plans: 488 ms p95). Within a pair
    the sort value is constant, so the pair's rows in ``account_id`` order are a range of
    ``(plan, status, account_id)``; ``query_account_facets`` names the pairs that have
    matches and says (in the database's collation) where each pair's value lies against the
    page token's, so a pair wholly before the token is not read at all. The page is the first
    ``page_size + 1`` of the merged walks: O(pairs x page) index reads at any size."""
    column = qaf.c.plan if q.sort is AccountSort.PLAN else qaf.c.status
    desc = q.descending
    if q.after is None:
        position = [true().label("beyond"), literal(False).label("tie")]
    else:
        value = literal(q.after[0])
        beyond = column < value if desc else column > value
        position = [beyond.label("beyond"), (column == value).label("tie")]
    pairs = (
        await conn.execute(
            select(qaf.c.plan, qaf.c.status, *position)
            .where(and_(true(), *_facet_filters(q)))
            .group_by(qaf.c.plan, qaf.c.status)
            .having(func.sum(qaf.c.n) > 0)
        )
    ).all()
    key = sort_key(q.sort, fx)
    ident = qa.c.account_id
    limit = q.page_size + 1
    branches = []
    for pair in pairs:
        if not (pair.beyond or pair.tie):
            continue
        where = [*filters, qa.c.plan == pair.plan, qa.c.status == pair.status]
        if pair.tie and q.after is not None:
            where.append(ident < q.after[1] if desc else ident > q.after[1])
        branches.append(
            select(*qa.c, key.label("sort_value"), mrr_platform(fx).label("mrr_platform"))
            .where(*where)
            .order_by(ident.desc() if desc else ident.asc())
            .limit(limit)
        )
    if not branches:
        return []
    merged = union_all(*(select(b.subquery()) for b in branches)).subquery("merged")
    order_by = (
        [merged.c.sort_value.desc(), merged.c.account_id.desc()]
        if desc
        else [merged.c.sort_value.asc(), merged.c.account_id.asc()]
    )
    return list((await conn.execute(select(merged).order_by(*order_by).limit(limit))).all())


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
    "SEARCH_COUNT_CAP",
    "AccountDetailRows",
    "account_customers",
    "account_page",
    "count_accounts",
    "count_accounts_by_rows",
    "get_account",
    "list_accounts",
    "live_account",
    "mrr_platform",
]
