"""Billing events (the ledger's rows) with their lenses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing.ledger.v1 import queries_pb2 as q

from services.backoffice_gateway.backends import Backends
from services.backoffice_gateway.views.common import (
    Money,
    Page,
    field_money,
    field_time,
    page_request,
    period,
)

LENSES = {
    "all": q.EVENT_LENS_ALL,
    "mrr_impact": q.EVENT_LENS_MRR_IMPACT,
    "subscription_state": q.EVENT_LENS_SUBSCRIPTION_STATE,
    "other": q.EVENT_LENS_OTHER,
}


@dataclass(frozen=True)
class EventRow:
    id: int
    stripe_event_id: str
    stripe_event_type: str
    event_type: str
    account_id: str
    stripe_customer_id: str
    subscription_id: str
    from_plan: str
    to_plan: str
    previous_amount: Money | None
    new_amount: Money | None
    amount_delta: Money | None
    refund_amount: Money | None
    committed_mrr: Money | None
    committed_mrr_carried: bool
    forward_mrr: Money | None
    occurred_at: datetime | None
    reason: str
    flags: list[str]
    drift_detected: bool
    lenses: list[str]


def event_row(e: q.BillingEventRow) -> EventRow:
    return EventRow(
        id=e.id,
        stripe_event_id=e.stripe_event_id,
        stripe_event_type=e.stripe_event_type,
        event_type=e.event_type,
        account_id=e.account_id,
        stripe_customer_id=e.stripe_customer_id,
        subscription_id=e.subscription_id,
        from_plan=e.from_plan,
        to_plan=e.to_plan,
        previous_amount=field_money(e, "previous_amount"),
        new_amount=field_money(e, "new_amount"),
        amount_delta=field_money(e, "amount_delta"),
        refund_amount=field_money(e, "refund_amount"),
        committed_mrr=field_money(e, "committed_mrr"),
        committed_mrr_carried=e.committed_mrr_carried,
        forward_mrr=field_money(e, "forward_mrr"),
        occurred_at=field_time(e, "occurred_at"),
        reason=e.reason,
        flags=list(e.flags),
        drift_detected=e.drift_detected,
        lenses=list(e.lenses),
    )


@dataclass(frozen=True)
class EventFilters:
    account_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    lens: str = "all"
    include_noop: bool = False
    oldest_first: bool = False
    page_size: int = 50
    page_token: str = ""


def list_events(backends: Backends, f: EventFilters) -> Page[EventRow]:
    answer = backends.call(
        "ledger",
        backends.ledger.ListBillingEvents,
        q.ListBillingEventsRequest(
            account_id=f.account_id,
            period=period(f.since, f.until),
            lens=LENSES[f.lens],
            include_noop=f.include_noop,
            oldest_first=f.oldest_first,
            page=page_request(f.page_size, f.page_token),
        ),
    )
    return Page(
        [event_row(e) for e in answer.events],
        answer.page.next_page_token,
        answer.page.total_count,
    )
