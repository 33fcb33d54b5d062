"""The dashboard page: one period selector (7/30/90) driving every card and chart.

The view model (``views.dashboard``) holds the figures; this module only turns its series
into charts. Money series are drawn in the platform currency, the one the ledger blends
every total into.
"""

from __future__ import annotations

from flask import jsonify, redirect, url_for
from werkzeug.wrappers import Response

from services.backoffice_gateway import charts
from services.backoffice_gateway.auth.decorators import login_required
from services.backoffice_gateway.context import gateway
from services.backoffice_gateway.formatting import as_amount
from services.backoffice_gateway.pages import bp, urls
from services.backoffice_gateway.pages.render import banner_list, billing_enabled, page
from services.backoffice_gateway.views import dashboard as dash


def _minor(value: object) -> int | None:
    amount = as_amount(value)
    return None if amount is None else amount.amount_minor


def build_charts(view: dash.DashboardView) -> list[charts.Chart]:
    """The dashboard's five charts, in reading order."""
    money = charts.money_formatter(view.platform_currency or "USD")
    labels = [p.date for p in view.mrr_trend]
    mrr = charts.line_chart(
        "mrr-trend",
        "Committed MRR",
        labels,
        [
            charts.Series("This period", "s1", [_minor(p.committed_mrr) for p in view.mrr_trend]),
            charts.Series(
                "Prior period",
                "s2",
                [_minor(p.prior_committed_mrr) for p in view.mrr_trend],
                dashed=True,
            ),
        ],
        money,
    )
    revenue = charts.line_chart(
        "revenue",
        "Cumulative net revenue",
        [p.date for p in view.revenue_trend],
        [
            charts.Series(
                "Cumulative net revenue", "s3", [_minor(p.cumulative) for p in view.revenue_trend]
            )
        ],
        money,
        area=True,
    )
    plans = charts.bar_chart(
        "plans",
        "Plan distribution",
        [p.plan or "No subscription" for p in view.plan_distribution],
        [p.accounts for p in view.plan_distribution],
        charts.count_formatter,
        value_label="Accounts",
        horizontal=True,
    )
    growth = charts.bar_chart(
        "growth",
        "New accounts per day",
        [p.date for p in view.account_growth],
        [p.new_accounts for p in view.account_growth],
        charts.count_formatter,
        value_label="New accounts",
    )
    movements = charts.stacked_movements(
        "movements",
        "MRR movements",
        [
            ("This period", {m.category: _minor(m.amount) or 0 for m in view.mrr_movements}),
            ("Prior period", {m.category: _minor(m.prior_amount) or 0 for m in view.mrr_movements}),
        ],
        money,
    )
    return [mrr, revenue, movements, plans, growth]


@bp.get("/")
@login_required
def dashboard() -> str | Response:
    if not billing_enabled():
        return redirect(url_for("pages.users"))
    period = int(urls.choice("period", [str(p) for p in dash.PERIODS], str(dash.DEFAULT_PERIOD)))
    gw = gateway()
    # The same caches as the JSON API: a page and its /api/v1 twin show the same snapshot.
    view = dash.dashboard(
        gw.backends, period_days=period, prior_trends=gw.prior_trends, cache=gw.dashboards
    )
    return page(
        "dashboard.html",
        view=view,
        charts=build_charts(view),
        periods=dash.PERIODS,
        period=period,
    )


@bp.get("/banners.json")
@login_required
def banners_json() -> Response:
    """What ``static/app.js`` polls to refresh the banners without a reload."""
    from datetime import UTC, datetime

    return jsonify(
        {"banners": banner_list(), "checked_at": datetime.now(UTC).isoformat(timespec="seconds")}
    )
