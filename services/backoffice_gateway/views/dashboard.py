"""The dashboard: one period (7 / 30 / 90 days) drives every card.

Everything comes from one ``GetDashboard`` call (the ledger computes the period, the prior
period and every series in one snapshot, so the cards always agree with each other).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from billing.ledger.v1 import queries_pb2 as q

from services.backoffice_gateway.backends import Backends
from services.backoffice_gateway.cache import TtlCache
from services.backoffice_gateway.views.accounts import AccountRow, account_row
from services.backoffice_gateway.views.common import Money, field_money, field_time
from services.backoffice_gateway.views.events import EventRow, event_row

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30


@dataclass(frozen=True)
class Kpi:
    """A KPI tile: the value, the prior period's, and the change (value - prior)."""

    key: str
    label: str
    value: Money | int | None
    prior: Money | int | None
    change: Money | int | None
    link: str  # the list the tile opens (filtered where it makes sense)


@dataclass(frozen=True)
class MrrPointView:
    date: str
    committed_mrr: Money | None
    forward_mrr: Money | None
    prior_committed_mrr: Money | None  # the same offset into the prior period (overlay)


@dataclass(frozen=True)
class RevenuePointView:
    date: str
    net_revenue: Money | None
    cumulative: Money | None


@dataclass(frozen=True)
class PlanShareView:
    plan: str
    accounts: int
    committed_mrr: Money | None


@dataclass(frozen=True)
class GrowthPointView:
    date: str
    new_accounts: int
    total_accounts: int


@dataclass(frozen=True)
class MovementView:
    category: str
    count: int
    amount: Money | None
    prior_count: int
    prior_amount: Money | None


@dataclass(frozen=True)
class DashboardView:
    period_days: int
    as_of: datetime | None
    period_start: datetime | None
    period_end: datetime | None
    prior_start: datetime | None
    prior_end: datetime | None
    platform_currency: str
    kpis: list[Kpi]
    mrr_trend: list[MrrPointView]
    revenue_trend: list[RevenuePointView]
    plan_distribution: list[PlanShareView]
    account_growth: list[GrowthPointView]
    mrr_movements: list[MovementView]
    recent_signups: list[AccountRow]
    recent_events: list[EventRow]
    unconverted_currencies: list[str]


def _minus(a: Money | None, b: Money | None) -> Money | None:
    if a is None or b is None or a.currency != b.currency:
        return None
    return Money(a.amount_minor - b.amount_minor, a.currency)


def _kpis(d: q.GetDashboardResponse) -> list[Kpi]:
    k = d.kpis
    committed = field_money(k, "committed_mrr")
    committed_prior = field_money(k, "committed_mrr_prior")
    # Live accounts at the end of the prior period, by the growth series' own definition.
    first = d.account_growth[0] if d.account_growth else None
    total_prior = (first.total_accounts - first.new_accounts if first is not None
                   else k.total_accounts - k.new_accounts)
    return [
        Kpi("total_accounts", "Total accounts", k.total_accounts, total_prior,
            k.total_accounts - total_prior, "/accounts"),
        Kpi("new_accounts", "New accounts", k.new_accounts, k.new_accounts_prior,
            k.new_accounts_delta, "/accounts?sort=created&desc=1"),
        Kpi("committed_mrr", "Committed MRR", committed, committed_prior,
            _minus(committed, committed_prior), "/accounts?sort=mrr&desc=1"),
        Kpi("forward_mrr", "Forward MRR", field_money(k, "forward_mrr"),
            field_money(k, "forward_mrr_prior"), field_money(k, "forward_mrr_delta"),
            "/accounts?sort=mrr&desc=1"),
        Kpi("net_revenue", "Net revenue", field_money(k, "net_revenue"),
            field_money(k, "net_revenue_prior"), field_money(k, "net_revenue_delta"),
            "/invoices"),
        Kpi("active_users", "Active users", k.active_users, k.active_users_prior,
            k.active_users - k.active_users_prior, "/users"),
    ]


def _movements(d: q.GetDashboardResponse) -> list[MovementView]:
    prior = {m.category: m for m in d.mrr_movements_prior}
    result = []
    for m in d.mrr_movements:
        p = prior.get(m.category)
        result.append(
            MovementView(
                category=m.category,
                count=m.count,
                amount=field_money(m, "amount"),
                prior_count=p.count if p is not None else 0,
                prior_amount=field_money(p, "amount") if p is not None else None,
            )
        )
    return result


def _request(period_days: int, as_of_seconds: int | None, recent_limit: int,
             trend_only: bool = False) -> q.GetDashboardRequest:
    request = q.GetDashboardRequest(
        period_days=period_days, recent_limit=recent_limit, trend_only=trend_only
    )
    if as_of_seconds is not None:
        request.as_of.FromSeconds(as_of_seconds)
    return request


# The prior period's MRR trend per (period, first second of the period): history, so the
# overlay need not cost a second dashboard query on every view.
PriorTrendCache = TtlCache[tuple[int, int], list[q.MrrPoint]]
# Whole dashboards per (period, as_of minute or the as_of asked for).
DashboardCache = TtlCache[tuple[int, int, bool], "DashboardView"]


DAY = 86_400


def dashboard(
    backends: Backends, period_days: int = DEFAULT_PERIOD, as_of: datetime | None = None,
    recent_limit: int = 10, prior_trends: PriorTrendCache | None = None,
    cache: DashboardCache | None = None,
) -> DashboardView:
    """One GetDashboard, and the prior period's trend for the overlay: a second GetDashboard
    ending where the prior period ends (the ledger's own definition), started at the same time
    so both queries run together, or taken from ``prior_trends`` (the app's cache).

    With ``cache``, a dashboard asked for "now" is reused within the same minute for the
    cache's TTL (GATEWAY_DASHBOARD_CACHE_SECONDS): every operator opening the dashboard in that
    window gets the same snapshot instead of a new aggregate over the whole ledger."""
    now = int((as_of or datetime.now(UTC)).timestamp())
    cache_key = (period_days, now if as_of is not None else now // 60, as_of is not None)
    if cache is not None:
        cached = cache.get(cache_key)
        if cached is not None:
            return cached
    view = _dashboard(backends, period_days, as_of, now, recent_limit, prior_trends)
    if cache is not None:
        cache.put(cache_key, view)
    return view


def _dashboard(
    backends: Backends, period_days: int, as_of: datetime | None, now: int, recent_limit: int,
    prior_trends: PriorTrendCache | None,
) -> DashboardView:
    prior_end = (now // DAY - period_days + 1) * DAY  # first second of the period = prior end
    key = (period_days, prior_end)
    prior_points = prior_trends.get(key) if prior_trends is not None else None
    prior_call = None
    if prior_points is None:
        prior_call = backends.start(
            "ledger", backends.ledger.GetDashboard,
            _request(period_days, prior_end - 1, 1, trend_only=True),
        )
    d = backends.call(
        "ledger", backends.ledger.GetDashboard,
        _request(period_days, now if as_of is not None else None, recent_limit),
    )
    if prior_call is not None:
        prior_points = list(prior_call.result().mrr_trend)
        if prior_trends is not None:
            prior_trends.put(key, prior_points)
    return DashboardView(
        period_days=d.period_days,
        as_of=field_time(d, "as_of"),
        period_start=field_time(d.period, "start"),
        period_end=field_time(d.period, "end"),
        prior_start=field_time(d.prior_period, "start"),
        prior_end=field_time(d.prior_period, "end"),
        platform_currency=d.platform_currency,
        kpis=_kpis(d),
        mrr_trend=_mrr_trend(d, prior_points or []),
        revenue_trend=[
            RevenuePointView(p.date, field_money(p, "net_revenue"), field_money(p, "cumulative"))
            for p in d.revenue_trend
        ],
        plan_distribution=[
            PlanShareView(p.plan, p.accounts, field_money(p, "committed_mrr"))
            for p in d.plan_distribution
        ],
        account_growth=[
            GrowthPointView(p.date, p.new_accounts, p.total_accounts) for p in d.account_growth
        ],
        mrr_movements=_movements(d),
        recent_signups=[account_row(a) for a in d.recent_signups],
        recent_events=[event_row(e) for e in d.recent_events],
        unconverted_currencies=list(d.unconverted_currencies),
    )


def _mrr_trend(d: q.GetDashboardResponse, prior_points: list[q.MrrPoint]) -> list[MrrPointView]:
    """The period's trend with the prior period overlaid point by point (same day offset)."""
    result = []
    for i, p in enumerate(d.mrr_trend):
        prior_point = prior_points[i] if i < len(prior_points) else None
        result.append(
            MrrPointView(
                date=p.date,
                committed_mrr=field_money(p, "committed_mrr"),
                forward_mrr=field_money(p, "forward_mrr"),
                prior_committed_mrr=(
                    field_money(prior_point, "committed_mrr") if prior_point is not None else None
                ),
            )
        )
    return result
