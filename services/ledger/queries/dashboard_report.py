"""The ``GetDashboard`` answer assembled from the dashboard's reads (:mod:`.dashboard`).

Kept apart from the servicer so the RPC only parses its request, calls :func:`dashboard_report`
and maps errors; this module decides which reads share a snapshot, how native amounts are
blended into the platform currency, and how the trend, growth and plan figures are built.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import date
from typing import Any

from billing.common.v1 import common_pb2
from billing.ledger.v1 import queries_pb2 as pb
from sqlalchemy.ext.asyncio import AsyncConnection

from services.common.timeconv import to_timestamp
from services.ledger.domain.movements import MrrMovementCategory
from services.ledger.queries import dashboard, events
from services.ledger.queries.convert import account_summary, billing_event_row, platform_money
from services.ledger.queries.fx import Blend, Fx
from services.ledger.queries.inputs import Window

#: Opens one REPEATABLE READ snapshot (the servicer's ``_snapshot``).
Snapshot = Callable[[], AbstractAsyncContextManager[AsyncConnection]]

_CATEGORIES = tuple(MrrMovementCategory)


async def dashboard_report(
    snapshot: Snapshot, w: Window, fx: Fx, limit: int, *, trend_only: bool
) -> pb.GetDashboardResponse:
    """The whole dashboard of window ``w`` (or only its frame when ``trend_only``)."""
    if trend_only:
        async with snapshot() as conn:
            only_curve = await dashboard.mrr_curve(conn, w.start_day, w.end_day)
        missing: set[str] = set()
        trend = dashboard_frame(w, fx, only_curve, missing)
        trend.unconverted_currencies.extend(sorted(missing))
        return trend

    # Three independent groups of reads on three connections in parallel: each group is one
    # snapshot (the MRR trend with its movements, revenue and events; the account counts; the
    # directory); a write landing between them can only make groups that share no figure a
    # few milliseconds apart.
    async def money() -> tuple[
        dashboard.MrrCurve,
        dict[date, dict[str, int]],
        tuple[dashboard.MovementTotals, dashboard.MovementTotals],
        list[Any],
    ]:
        async with snapshot() as conn:
            return (
                await dashboard.mrr_curve(conn, w.start_day, w.end_day),
                await dashboard.revenue_by_day(conn, w.prior_start_day, w.end_day),
                await dashboard.mrr_movements(conn, w, fx),
                await events.recent_events(conn, w.end, limit),
            )

    async def account_reads() -> tuple[
        dashboard.AccountCounts, dict[date, int], list[Any], list[Any]
    ]:
        async with snapshot() as conn:
            counts, plans = await dashboard.account_mix(conn, w)
            return (
                counts,
                await dashboard.signups_by_day(conn, w),
                plans,
                await dashboard.recent_signups(conn, w, limit),
            )

    async def directory() -> dashboard.DirectoryActivity:
        async with snapshot() as conn:
            return await dashboard.directory_activity(conn, w)

    tasks = [
        money_task := asyncio.ensure_future(money()),
        accounts_task := asyncio.ensure_future(account_reads()),
        directory_task := asyncio.ensure_future(directory()),
    ]
    try:
        curve, revenue, (moves, moves_prior), recent_rows = await money_task
        counts, signups, plans, recent = await accounts_task
        activity = await directory_task
    finally:
        for task in tasks:
            task.cancel()  # no-op once done; stops the others after a failure
        await asyncio.gather(*tasks, return_exceptions=True)
    unconverted: set[str] = set()

    def blend(native: dict[str, int]) -> int:
        b = Blend(fx).extend(native.items())
        unconverted.update(b.unconverted)
        return b.total

    last_committed, last_forward = (
        (curve.points[-1][1], curve.points[-1][2]) if curve.points else curve.before
    )
    prior_committed, prior_forward = curve.before

    revenue_points = []
    cumulative: dict[str, int] = {}
    prior_total: dict[str, int] = {}
    for day, native in revenue.items():
        if day < w.start_day:
            for cur, amount in native.items():
                prior_total[cur] = prior_total.get(cur, 0) + amount
    for day in w.days_of_period():
        today = revenue.get(day, {})
        for cur, amount in today.items():
            cumulative[cur] = cumulative.get(cur, 0) + amount
        revenue_points.append(
            pb.RevenuePoint(
                date=day.isoformat(),
                net_revenue=platform_money(blend(today), fx),
                cumulative=platform_money(blend(cumulative), fx),
            )
        )
    net_revenue = blend(cumulative)
    net_revenue_prior = blend(prior_total)

    growth = []
    total = counts.before_period
    for day in w.days_of_period():
        new = signups.get(day, 0)
        total += new
        growth.append(pb.GrowthPoint(date=day.isoformat(), new_accounts=new, total_accounts=total))

    plan_accounts: dict[str, int] = {}
    plan_mrr: dict[str, dict[str, int]] = {}
    for row in plans:
        plan = row.plan or ""
        plan_accounts[plan] = plan_accounts.get(plan, 0) + int(row.accounts)
        if row.currency:
            per = plan_mrr.setdefault(plan, {})
            per[row.currency] = per.get(row.currency, 0) + int(row.mrr or 0)
    shares = [
        pb.PlanShare(
            plan=plan,
            accounts=n,
            committed_mrr=platform_money(blend(plan_mrr.get(plan, {})), fx),
        )
        for plan, n in sorted(plan_accounts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]

    def movement_totals(totals: dashboard.MovementTotals) -> list[pb.MrrMovementTotal]:
        unconverted.update(totals.all_unconverted())
        return [
            pb.MrrMovementTotal(
                category=c.value,
                count=totals.counts.get(c, 0),
                amount=platform_money(totals.amount(c), fx),
            )
            for c in _CATEGORIES
        ]

    forward_now, forward_prior = blend(last_forward), blend(prior_forward)
    kpis = pb.DashboardKpis(
        total_accounts=counts.total,
        new_accounts=counts.new,
        new_accounts_prior=counts.new_prior,
        new_accounts_delta=counts.new - counts.new_prior,
        forward_mrr=platform_money(forward_now, fx),
        forward_mrr_prior=platform_money(forward_prior, fx),
        forward_mrr_delta=platform_money(forward_now - forward_prior, fx),
        committed_mrr=platform_money(blend(last_committed), fx),
        committed_mrr_prior=platform_money(blend(prior_committed), fx),
        net_revenue=platform_money(net_revenue, fx),
        net_revenue_prior=platform_money(net_revenue_prior, fx),
        net_revenue_delta=platform_money(net_revenue - net_revenue_prior, fx),
        active_users=activity.active_users,
        active_users_prior=activity.active_users_prior,
        active_sessions=activity.active_sessions,
    )
    response = dashboard_frame(w, fx, curve, unconverted)
    response.MergeFrom(pb.GetDashboardResponse(
        kpis=kpis,
        revenue_trend=revenue_points,
        plan_distribution=shares,
        account_growth=growth,
        recent_signups=[account_summary(r, fx) for r in recent],
        recent_events=[billing_event_row(r) for r in recent_rows],
        mrr_movements=movement_totals(moves),
        mrr_movements_prior=movement_totals(moves_prior),
    ))
    for row in recent:
        if row.currency and fx.rate(row.currency) is None:
            unconverted.add(row.currency)
    response.unconverted_currencies.extend(sorted(unconverted))
    return response


def dashboard_frame(
    w: Window, fx: Fx, curve: dashboard.MrrCurve, unconverted: set[str]
) -> pb.GetDashboardResponse:
    """The periods and the MRR trend: the whole of a ``trend_only`` answer and the start
    of a full one, so the overlay's points are the dashboard's own by construction.
    Currencies without a rate are added to ``unconverted`` for the caller to report."""

    def blend(native: dict[str, int]) -> int:
        b = Blend(fx).extend(native.items())
        unconverted.update(b.unconverted)
        return b.total

    return pb.GetDashboardResponse(
        as_of=to_timestamp(w.as_of),
        period_days=w.days,
        period=common_pb2.Period(start=to_timestamp(w.start), end=to_timestamp(w.end)),
        prior_period=common_pb2.Period(
            start=to_timestamp(w.prior_start), end=to_timestamp(w.start)
        ),
        platform_currency=fx.platform,
        mrr_trend=[
            pb.MrrPoint(
                date=day.isoformat(),
                committed_mrr=platform_money(blend(committed), fx),
                forward_mrr=platform_money(blend(forward), fx),
            )
            for day, committed, forward in curve.points
        ],
    )


__all__ = ["Snapshot", "dashboard_frame", "dashboard_report"]
