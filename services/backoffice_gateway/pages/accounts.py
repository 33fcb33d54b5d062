"""Accounts: the list (search, multi-select filters, sort, paging, side pane) and the
account page with its tabs (Overview, Users, Invoices, Billing events) and admin menu.

All list state is in the URL (``q``, ``plan``..., ``status``..., ``drift``, ``never_synced``,
``sort``, ``desc``, ``page``/``trail``, ``preview``): a link or reload shows the same list.
The side pane is rendered by the server when ``preview`` names an account (so it works
without script); ``static/app.js`` fetches ``/accounts/<id>/pane`` to open it in place.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from services.backoffice_gateway.auth.decorators import login_required
from services.backoffice_gateway.context import gateway
from services.backoffice_gateway.errors import ApiError
from services.backoffice_gateway.pages import bp, urls
from services.backoffice_gateway.pages.render import page, require_billing
from services.backoffice_gateway.views import accounts as acc
from services.backoffice_gateway.views import events as ev
from services.backoffice_gateway.views import invoices as inv
from services.backoffice_gateway.views import users as us

TABS = ("overview", "users", "invoices", "events")
SORT_LABELS = {
    "name": "Account",
    "plan": "Plan",
    "status": "Status",
    "mrr": "MRR",
    "renewal": "Renews",
    "created": "Created",
}


def account_filters() -> acc.AccountFilters:
    return acc.AccountFilters(
        search=urls.arg("q"),
        plans=urls.args_list("plan"),
        statuses=urls.args_list("status", ("", *acc.STATUSES)),
        drift=urls.flag("drift"),
        never_synced=urls.flag("never_synced"),
        sort=urls.choice("sort", acc.SORT_KEYS, "name"),
        descending=bool(urls.flag("desc")),
        page_size=urls.page_size(),
        page_token=urls.arg("page"),
    )


def _plan_choices(selected: list[str]) -> list[tuple[str, int | None]]:
    """The plans to offer, with their live account counts: every plan the ledger knows
    (its ListPlans, cached for a minute per process), plus any selected one it does not (a
    link may name a plan from elsewhere; no count then)."""
    known = {p.plan: p.accounts for p in _PLANS.get()}
    extra = {s: None for s in selected if s and s not in known}
    return sorted({**known, **extra}.items())


class _PlanCache:
    """Plan names change when the catalogue does, not per request: one ledger call a minute."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._plans: list[acc.PlanChoice] = []
        self._at = -ttl

    def get(self) -> list[acc.PlanChoice]:
        with self._lock:
            if time.monotonic() - self._at < self._ttl:
                return self._plans
        try:
            plans = acc.list_plans(gateway().backends)
        except ApiError:
            return self._plans  # keep what we had; the filter still works by URL
        with self._lock:
            self._plans, self._at = plans, time.monotonic()
        return plans


_PLANS = _PlanCache(60.0)


def _preview(account_id: str) -> acc.AccountDetailView | None:
    if not account_id:
        return None
    try:
        return acc.account_detail(gateway().backends, account_id)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


@bp.get("/accounts")
@login_required
def accounts() -> str:
    require_billing()
    filters = account_filters()
    result = acc.list_accounts(gateway().backends, filters)
    preview_id = urls.arg("preview")
    return page(
        "accounts.html",
        filters=filters,
        result=result,
        plans=_plan_choices(filters.plans),
        statuses=acc.STATUSES,
        sort_labels=SORT_LABELS,
        preview=_preview(preview_id),
        preview_id=preview_id,
        next_url=urls.next_page(result.next_page_token) if result.next_page_token else None,
        prev_url=urls.previous_page(),
        first_url=urls.with_args({}) if urls.arg("page") else None,
        csv_url=urls.csv_link(
            "/api/v1/accounts",
            {
                "q": filters.search,
                "plan": filters.plans,
                "status": filters.statuses,
                "drift": _bool_param(filters.drift),
                "never_synced": _bool_param(filters.never_synced),
                "sort": filters.sort,
                "desc": filters.descending,
            },
        ),
    )


def _bool_param(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


@bp.get("/accounts/<account_id>/pane")
@login_required
def account_pane(account_id: str) -> str:
    """The side pane alone (what app.js inserts); the full list renders the same partial."""
    require_billing()
    urls.path_id(account_id)
    detail = acc.account_detail(gateway().backends, account_id)
    from flask import render_template

    return render_template("_account_pane.html", preview=detail, close_url="/accounts")


@bp.get("/accounts/<account_id>")
@login_required
def account(account_id: str) -> str:
    require_billing()
    urls.path_id(account_id)
    tab = urls.choice("tab", TABS, "overview")
    gw = gateway()
    detail = acc.account_detail(gw.backends, account_id)
    context: dict[str, Any] = {"detail": detail, "tab": tab, "tabs": TABS}
    size = urls.page_size()
    token = urls.arg("page")
    if tab == "overview":
        context["recent_events"] = ev.list_events(
            gw.backends, ev.EventFilters(account_id=account_id, page_size=10)
        ).items
    elif tab == "users":
        tenant = detail.account.tenant_id
        context["result"] = (
            us.list_users(
                gw.backends, us.UserFilters(tenant_id=tenant, page_size=size, page_token=token)
            )
            if tenant
            else None
        )
        context["csv_url"] = urls.csv_link(f"/api/v1/accounts/{account_id}/users", {})
    elif tab == "invoices":
        lens = urls.choice("lens", tuple(inv.LENSES), "all")
        context["lens"] = lens
        context["lenses"] = tuple(inv.LENSES)
        context["result"] = inv.list_invoices(
            gw.backends,
            inv.InvoiceFilters(account_id=account_id, lens=lens, page_size=size, page_token=token),
        )
        context["csv_url"] = urls.csv_link(
            f"/api/v1/accounts/{account_id}/invoices", {"lens": lens}
        )
    else:
        lens = urls.choice("lens", tuple(ev.LENSES), "all")
        context["lens"] = lens
        context["lenses"] = tuple(ev.LENSES)
        context["result"] = ev.list_events(
            gw.backends,
            ev.EventFilters(account_id=account_id, lens=lens, page_size=size, page_token=token),
        )
        context["csv_url"] = urls.csv_link(f"/api/v1/accounts/{account_id}/events", {"lens": lens})
    result = context.get("result")
    token_next = getattr(result, "next_page_token", "")
    context["next_url"] = urls.next_page(token_next) if token_next else None
    context["prev_url"] = urls.previous_page()
    return page("account.html", **context)
