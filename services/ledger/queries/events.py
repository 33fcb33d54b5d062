"""The billing-event list (timeline) and its exact total counts.

Rows come straight from ``ledger.billing_events`` in ``(occurred_at, stripe_event_id)`` order
(index ``billing_events_time``, or ``billing_events_customer_time`` for one account). The
total count of an unfiltered-by-account list is read from ``ledger.query_event_daily`` (per
day, type and "has a delta") for the whole days inside the period, plus an indexed count of
the partial days at its edges: exact without scanning a million rows.

For rows without subscription state (``committed_mrr`` NULL) the MRR shown is the
subscription's latest committed MRR at or before the row (``ledger.committed_mrr_as_of``),
flagged as carried, exactly as GetBillingEvent does.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.directory.tables import customer_links
from services.ledger.queries.inputs import EventListQuery, TimeRange, day_start, utc_day
from services.ledger.queries.lenses import Lens, lens_condition
from services.ledger.queries.tables import accounts, billing_events, query_event_daily

be = billing_events
qed = query_event_daily
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
    out: list[ColumnElement[bool]] = []
    if period.start is not None:
        out.append(be.c.occurred_at >= period.start)
    if period.end is not None:
        out.append(be.c.occurred_at < period.end)
    return out


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
    in_lens_daily = lens_condition(lens, qed.c.event_type, qed.c.has_delta, include_noop)
    in_lens_rows = lens_condition(lens, be.c.event_type, has_delta(), include_noop)
    first_full: date | None = None  # whole days [first_full, end_full) come from the aggregate
    end_full: date | None = None
    edges: list[TimeRange] = []
    if period.start is not None:
        first_full = utc_day(period.start)
        if day_start(first_full) < period.start:
            first_full += timedelta(days=1)
            edges.append(TimeRange(period.start, day_start(first_full)))
    if period.end is not None:
        end_full = utc_day(period.end)
        if day_start(end_full) < period.end:
            edges.append(TimeRange(day_start(end_full), period.end))
    if first_full is not None and end_full is not None and end_full <= first_full:
        # the period lies within one or two days: count it directly
        edges = [period]
        first_full = end_full = None
        daily_filters: list[ColumnElement[bool]] | None = None
    else:
        daily_filters = [in_lens_daily]
        if first_full is not None:
            daily_filters.append(qed.c.day >= first_full)
        if end_full is not None:
            daily_filters.append(qed.c.day < end_full)
    total = 0
    if daily_filters is not None:
        total += int(
            (
                await conn.execute(
                    select(func.coalesce(func.sum(qed.c.n), 0)).where(and_(*daily_filters))
                )
            ).scalar_one()
        )
    for edge in edges:
        bounds = _clip(edge, period)
        total += int(
            (
                await conn.execute(
                    select(func.count()).select_from(be).where(in_lens_rows, *_period(bounds))
                )
            ).scalar_one()
        )
    return total


def _clip(edge: TimeRange, period: TimeRange) -> TimeRange:
    start = edge.start if edge.start is not None else period.start
    end = edge.end if edge.end is not None else period.end
    if period.start is not None and start is not None:
        start = max(start, period.start)
    if period.end is not None and end is not None:
        end = min(end, period.end)
    return TimeRange(start, end)


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
