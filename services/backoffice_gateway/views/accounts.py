"""Accounts: the list (search, filters, sort, paging) and one account's detail page.

Forward MRR is shown beside committed MRR when they differ (a queued downgrade or a pending
update); both come from the ledger, never computed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from billing.ledger.v1 import queries_pb2 as q

from services.backoffice_gateway.backends import Backends
from services.backoffice_gateway.views.common import (
    Money,
    Page,
    field_money,
    field_time,
    money,
    page_request,
    timestamp,
)

SORT_KEYS = ("name", "plan", "mrr", "renewal", "status", "created")
STATUSES = (
    "active", "trialing", "past_due", "unpaid", "canceled", "incomplete",
    "incomplete_expired", "paused",
)


@dataclass(frozen=True)
class AccountRow:
    account_id: str
    name: str
    email: str
    tenant_id: str
    stripe_customer_ids: list[str]
    plan: str
    status: str
    subscription_id: str
    committed_mrr: Money | None
    forward_mrr: Money | None
    forward_differs: bool
    committed_mrr_platform: Money | None
    renewal_at: datetime | None
    created_at: datetime | None
    deleted_at: datetime | None
    drift_detected: bool
    unsynced: bool
    mixed_currency: bool


def account_row(a: q.AccountSummary) -> AccountRow:
    committed = field_money(a, "committed_mrr")
    forward = field_money(a, "forward_mrr")
    return AccountRow(
        account_id=a.account_id,
        name=a.name,
        email=a.email,
        tenant_id=a.tenant_id,
        stripe_customer_ids=list(a.stripe_customer_ids),
        plan=a.plan,
        status=a.status,
        subscription_id=a.subscription_id,
        committed_mrr=committed,
        forward_mrr=forward,
        forward_differs=committed != forward and forward is not None,
        committed_mrr_platform=field_money(a, "committed_mrr_platform"),
        renewal_at=field_time(a, "renewal_at"),
        created_at=field_time(a, "created_at"),
        deleted_at=field_time(a, "deleted_at"),
        drift_detected=a.drift_detected,
        unsynced=a.unsynced,
        mixed_currency=a.mixed_currency,
    )


@dataclass(frozen=True)
class AccountFilters:
    """Everything that selects and orders the list; all of it lives in the page's URL."""

    search: str = ""
    plans: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    drift: bool | None = None
    never_synced: bool | None = None
    sort: str = "name"
    descending: bool = False
    page_size: int = 50
    page_token: str = ""


def list_accounts(backends: Backends, f: AccountFilters) -> Page[AccountRow]:
    request = q.ListAccountsRequest(
        search=f.search,
        plans=f.plans,
        statuses=f.statuses,
        sort_by=f.sort,
        descending=f.descending,
        page=page_request(f.page_size, f.page_token),
    )
    if f.drift is not None:
        request.drift_detected = f.drift
    if f.never_synced is not None:
        request.unsynced = f.never_synced
    answer = backends.call("ledger", backends.ledger.ListAccounts, request)
    return Page(
        items=[account_row(a) for a in answer.accounts],
        next_page_token=answer.page.next_page_token,
        total_count=answer.page.total_count,
        total_is_lower_bound=answer.page.total_count_is_lower_bound,
        extra={
            "platform_currency": answer.platform_currency,
            "unconverted_currencies": list(answer.unconverted_currencies),
        },
    )


@dataclass(frozen=True)
class PlanCardView:
    subscription_id: str
    plan: str
    status: str
    price: Money | None
    quantity: int
    interval: str
    interval_count: int
    current_period_start: datetime | None
    renewal_at: datetime | None
    cancel_at_period_end: bool
    cancel_at: datetime | None
    ended_at: datetime | None
    trial_end: datetime | None
    scheduled_plan: str
    scheduled_mrr: Money | None
    scheduled_change_at: datetime | None
    committed_mrr: Money | None
    forward_mrr: Money | None


def plan_card(p: q.PlanCard) -> PlanCardView:
    return PlanCardView(
        subscription_id=p.subscription_id,
        plan=p.plan,
        status=p.status,
        price=field_money(p, "price"),
        quantity=p.quantity,
        interval=p.interval,
        interval_count=p.interval_count,
        current_period_start=field_time(p, "current_period_start"),
        renewal_at=field_time(p, "renewal_at"),
        cancel_at_period_end=p.cancel_at_period_end,
        cancel_at=field_time(p, "cancel_at"),
        ended_at=field_time(p, "ended_at"),
        trial_end=field_time(p, "trial_end"),
        scheduled_plan=p.scheduled_plan,
        scheduled_mrr=field_money(p, "scheduled_mrr"),
        scheduled_change_at=field_time(p, "scheduled_change_at"),
        committed_mrr=field_money(p, "committed_mrr"),
        forward_mrr=field_money(p, "forward_mrr"),
    )


@dataclass(frozen=True)
class AccountDetailView:
    account: AccountRow
    plan: PlanCardView | None
    subscriptions: list[PlanCardView]
    ltv: Money | None
    ltv_by_currency: list[Money]
    committed_mrr: Money | None
    forward_mrr: Money | None
    users_total: int
    users_active: int
    platform_currency: str
    unconverted_currencies: list[str]
    as_of: datetime | None


def account_detail(
    backends: Backends, account_id: str, as_of: datetime | None = None
) -> AccountDetailView:
    request = q.GetAccountRequest(account_id=account_id)
    if as_of is not None:
        request.as_of.CopyFrom(timestamp(as_of))
    d = backends.call("ledger", backends.ledger.GetAccount, request)
    return AccountDetailView(
        account=account_row(d.account),
        plan=plan_card(d.plan) if d.HasField("plan") else None,
        subscriptions=[plan_card(p) for p in d.subscriptions],
        ltv=field_money(d, "ltv"),
        ltv_by_currency=[m for m in (money(x) for x in d.ltv_by_currency) if m],
        committed_mrr=field_money(d, "committed_mrr"),
        forward_mrr=field_money(d, "forward_mrr"),
        users_total=d.users_total,
        users_active=d.users_active,
        platform_currency=d.platform_currency,
        unconverted_currencies=list(d.unconverted_currencies),
        as_of=field_time(d, "as_of"),
    )


@dataclass(frozen=True)
class PlanChoice:
    plan: str
    accounts: int  # live accounts on it now (0: a plan nobody is on any more)


def list_plans(backends: Backends) -> list[PlanChoice]:
    """Every plan the ledger knows, by name: the plan filter's choices."""
    answer = backends.call("ledger", backends.ledger.ListPlans, q.ListPlansRequest())
    return [PlanChoice(p.plan, p.accounts) for p in answer.plans]
