"""Exact counts of a list over a time period, from a per-day count table plus its edges.

The event list (``query_event_daily``) and the invoice list (``query_invoice_daily``, 0014)
both keep their rows counted per UTC day; a period's total is the sum of the whole days inside
it plus an indexed count of the rows of the partial days at its edges, so the total does not
grow with the table. One implementation for both lists.

The edge days themselves hold a day of rows each, which grows with the accounts (at 200,000
accounts about 5,500 billing events a day, each read to test the lens: the "mrr 30d" list went
108 -> 210 ms p95 from 10,000 to 200,000 accounts). A list that also keeps its rows per UTC
hour (``query_event_hourly``, migration 0016) counts the whole hours of an edge day from there
and reads only the rows of the partial hours at the period's two ends (none for a period on
whole hours).
"""

from __future__ import annotations

import functools
import operator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.queries.inputs import TimeRange, day_start, utc_day


def _split(period: TimeRange) -> tuple[date | None, date | None, list[TimeRange], bool]:
    """Whole UTC days [first_full, end_full) of ``period``, its partial edges, and whether
    the daily table is read at all (not for a period within one or two days)."""
    first_full: date | None = None
    end_full: date | None = None
    edges: list[TimeRange] = []
    if period.start is not None:
        first_full = utc_day(period.start)
        if day_start(first_full) < period.start:
            first_full = date.fromordinal(first_full.toordinal() + 1)
            edges.append(TimeRange(period.start, day_start(first_full)))
    if period.end is not None:
        end_full = utc_day(period.end)
        if day_start(end_full) < period.end:
            edges.append(TimeRange(day_start(end_full), period.end))
    if first_full is not None and end_full is not None and end_full <= first_full:
        return None, None, [period], False  # count it directly
    return first_full, end_full, edges, True


def _clip(edge: TimeRange, period: TimeRange) -> TimeRange:
    start = edge.start if edge.start is not None else period.start
    end = edge.end if edge.end is not None else period.end
    if period.start is not None and start is not None:
        start = max(start, period.start)
    if period.end is not None and end is not None:
        end = min(end, period.end)
    return TimeRange(start, end)


def in_period(at: Any, period: TimeRange) -> list[ColumnElement[bool]]:
    """``at`` within ``period`` (start inclusive, end exclusive, either open)."""
    out: list[ColumnElement[bool]] = []
    if period.start is not None:
        out.append(at >= period.start)
    if period.end is not None:
        out.append(at < period.end)
    return out


def _hour_floor(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_ceil(at: datetime) -> datetime:
    floor = _hour_floor(at)
    return floor if floor == at else floor + timedelta(hours=1)


async def count_over_days(
    conn: AsyncConnection,
    period: TimeRange,
    *,
    daily: Any,
    daily_where: ColumnElement[bool],
    rows: Any,
    rows_at: Any,
    rows_where: ColumnElement[bool],
    hourly: Any = None,
    hourly_where: ColumnElement[bool] | None = None,
) -> int:
    """Rows of ``rows`` matching ``rows_where`` with ``rows_at`` in ``period``.

    ``daily`` is the per-day table (columns ``day`` and ``n``) whose rows matching
    ``daily_where`` count exactly those rows of each day; ``hourly`` (optional, columns
    ``hour`` and ``n``, the hour's UTC start) the same per hour with ``hourly_where``. The
    parts are summed in one statement."""
    first_full, end_full, edges, use_daily = _split(period)
    parts: list[Any] = []
    if use_daily:
        where: list[ColumnElement[bool]] = [daily_where]
        if first_full is not None:
            where.append(daily.c.day >= first_full)
        if end_full is not None:
            where.append(daily.c.day < end_full)
        parts.append(select(func.coalesce(func.sum(daily.c.n), 0)).where(*where).scalar_subquery())
    for edge in edges:
        bounds = _clip(edge, period)
        raw = [bounds]
        if hourly is not None and bounds.start is not None and bounds.end is not None:
            first_hour, end_hour = _hour_ceil(bounds.start), _hour_floor(bounds.end)
            if first_hour < end_hour:
                parts.append(
                    select(func.coalesce(func.sum(hourly.c.n), 0))
                    .where(hourly_where if hourly_where is not None else true(),
                           hourly.c.hour >= first_hour,
                           hourly.c.hour < end_hour)
                    .scalar_subquery()
                )
                raw = [
                    r
                    for r in (TimeRange(bounds.start, first_hour), TimeRange(end_hour, bounds.end))
                    if r.start is not None and r.end is not None and r.start < r.end
                ]
        parts.extend(
            select(func.count())
            .select_from(rows)
            .where(and_(true(), rows_where, *in_period(rows_at, r)))
            .scalar_subquery()
            for r in raw
        )
    if not parts:
        return 0
    total = (await conn.execute(select(functools.reduce(operator.add, parts)))).scalar_one()
    return int(total)


__all__ = ["count_over_days", "in_period"]
