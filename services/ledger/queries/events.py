"""The billing-event list (timeline) and its exact total counts.

Rows come straight from ``ledger.billing_events`` in ``(occurred_at, stripe_event_id)`` order
(index ``billing_events_time``, or ``billing_events_customer_time`` for one account). The
total count of an unfiltered-by-account list is read from ``ledger.query_event_daily`` (per
day, type and "has a delta") for the whole days inside the period, from
``ledger.query_event_hourly`` (migration 0016) for the whole hours of its edge days, plus an
indexed count of the partial hours at its two ends: exact without scanning a million rows.

For rows without subscription state (``committed_mrr`` NULL) the MRR shown is the
subscription's latest committed MRR at or before the row (``ledger.committed_mrr_as_of``),
flagged as carried, exactly as GetBillingEvent does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.directory.tables import customer_links
from services.ledger.queries.daily_counts import count_over_days, in_period
from services.ledger.queries.inputs import EventListQuery, TimeRange
from services.ledger.queries.lenses import Lens, lens_condition
from services.ledger.queries.tables import (
    accounts,
    billing_events,
    query_event_daily,
    query_event_hourly,
)

be = billing_events
qed = query_event_daily
qeh = query_event_hourly
Row = Any


def has_delta() -> ColumnElement[bool]:
    return func.coalesce(be.c.amount_delta, 0) != 0


def event_columns() -> list[Any]:
    carried = func.ledger.committed_mrr_as_of(
        be.c.subscription_id, be.c.occurred_at, be.c.stripe_event_id
    )
    return [
        *be.c,
        # the account-identity rule (services.ledger.domain.rules.ACCOUNT_PRECEDENCE)
        func.ledger.account_id(
            customer_links.c.tenant_id,
            be.c.tenant_id,
            accounts.c.tenant_id,
            be.c.stripe_customer_id,
        ).label("account_id"),
        case(  # CASE is lazy: the carried lookup runs only for rows without their own value
            (be.c.committed_mrr.is_not(None), be.c.committed_mrr),
            (be.c.subscription_id.is_not(None), carried),
            else_=None,
        ).label("mrr"),
        and_(be.c.committed_mrr.is_(None), be.c.subscription_id.is_not(None)).label("mrr_carried"),
        has_delta().label("has_delta"),
    ]


def _events_from() -> Any:
    return be.outerjoin(
        accounts, accounts.c.stripe_customer_id == be.c.stripe_customer_id
    ).outerjoin(customer_links, customer_links.c.stripe_customer_id == be.c.stripe_customer_id)


def _period(period: TimeRange) -> list[ColumnElement[bool]]:
    return in_period(be.c.occurred_at, period)


def _account(customers: list[str], account_id: str) -> ColumnElement[bool]:
    """Rows of the account's customers, and rows whose payload names the account's tenant
    unless their customer is explicitly linked to another tenant (the link wins)."""
    link = customer_links.alias("other_link")
    linked_elsewhere = (
        exists()
        .where(link.c.stripe_customer_id == be.c.stripe_customer_id, link.c.tenant_id != account_id)
        .correlate_except(link)
    )
    return or_(
        be.c.stripe_customer_id.in_(customers),
        and_(be.c.tenant_id == account_id, ~linked_elsewhere),
    )


async def list_events(
    conn: AsyncConnection, q: EventListQuery, customers: list[str] | None
) -> tuple[list[Row], int]:
    """Up to ``page_size + 1`` rows and the exact total matching the filters."""
    filters: list[ColumnElement[bool]] = [
        lens_condition(q.lens, be.c.event_type, has_delta(), q.include_noop),
        *_period(q.period),
    ]
    if q.account_id is not None and customers is not None:
        filters.append(_account(customers, q.account_id))
    page_filters = list(filters)
    key = tuple_(be.c.occurred_at, be.c.stripe_event_id)
    if q.after is not None:
        bound = tuple_(*q.after)
        page_filters.append(key > bound if q.oldest_first else key < bound)
    order = (
        [be.c.occurred_at.asc(), be.c.stripe_event_id.asc()]
        if q.oldest_first
        else [be.c.occurred_at.desc(), be.c.stripe_event_id.desc()]
    )
    rows = (
        await conn.execute(
            select(*event_columns())
            .select_from(_events_from())
            .where(and_(true(), *page_filters))
            .order_by(*order)
            .limit(q.page_size + 1)
        )
    ).all()
    if q.account_id is not None:
        total = (
            await conn.execute(select(func.count()).select_from(be).where(and_(true(), *filters)))
        ).scalar_one()
    else:
        total = await count_events(conn, q.period, q.lens, q.include_noop)
    return list(rows), int(total)


async def count_events(
    conn: AsyncConnection, period: TimeRange, lens: Lens, include_noop: bool
) -> int:
    """Exact count of billing events in ``period`` and ``lens``, mostly from daily counts."""
    return await count_over_days(
        conn,
        period,
        daily=qed,
        daily_where=lens_condition(lens, qed.c.event_type, qed.c.has_delta, include_noop),
        rows=be,
        rows_at=be.c.occurred_at,
        rows_where=lens_condition(lens, be.c.event_type, has_delta(), include_noop),
        hourly=qeh,
        hourly_where=lens_condition(lens, qeh.c.event_type, qeh.c.has_delta, include_noop),
    )


async def recent_events(conn: AsyncConnection, until: datetime, limit: int) -> list[Row]:
    """The newest ``limit`` billing events before ``until``, NoOp hidden."""
    return list(
        (
            await conn.execute(
                select(*event_columns())
                .select_from(_events_from())
                .where(be.c.event_type != "NoOp", be.c.occurred_at < until)
                .order_by(be.c.occurred_at.desc(), be.c.stripe_event_id.desc())
                .limit(limit)
            )
        ).all()
    )


__all__ = ["count_events", "event_columns", "has_delta", "list_events", "recent_events"]
