"""Rows of the query tables as protobuf messages (Money everywhere money appears)."""

from __future__ import annotations

from typing import Any

from billing.common.v1 import common_pb2
from billing.ledger.v1 import queries_pb2 as pb

from services.common.timeconv import to_timestamp
from services.ledger.domain.rules import is_cancelling_at
from services.ledger.queries.fx import Fx
from services.ledger.queries.lenses import lenses_of

Row = Any


def money(amount: int | None, currency: str | None) -> common_pb2.Money | None:
    """A Money message, or None (field left unset) when amount or currency is unknown."""
    if amount is None or not currency:
        return None
    return common_pb2.Money(amount_minor=int(amount), currency=currency)


def platform_money(amount: int, fx: Fx) -> common_pb2.Money:
    return common_pb2.Money(amount_minor=int(amount), currency=fx.platform)


def account_summary(row: Row, fx: Fx, *, with_deleted: bool = False) -> pb.AccountSummary:
    currency = row.currency
    converted = fx.convert(int(row.committed_mrr), currency) if currency else None
    return pb.AccountSummary(
        account_id=row.account_id,
        name=row.name or "",
        email=row.email or "",
        tenant_id=row.tenant_id or "",
        stripe_customer_ids=list(row.stripe_customer_ids or []),
        plan=row.plan or "",
        status=row.status or "",
        subscription_id=row.subscription_id or "",
        committed_mrr=money(row.committed_mrr, currency),
        forward_mrr=money(row.forward_mrr, currency),
        committed_mrr_platform=platform_money(converted, fx) if converted is not None else None,
        renewal_at=to_timestamp(row.renewal_at),
        created_at=to_timestamp(row.created_at),
        deleted_at=to_timestamp(row.deleted_at) if with_deleted else None,
        drift_detected=bool(row.drift_detected),
        unsynced=bool(row.unsynced),
        mixed_currency=bool(row.mixed_currency),
    )


def plan_card(row: Row) -> pb.PlanCard:
    currency = row.currency
    price = (
        row.unit_amount * (row.quantity if row.quantity is not None else 1)
        if row.unit_amount is not None
        else None
    )
    cancelling = is_cancelling_at(row.cancel_at_period_end, row.cancel_at, row.current_period_end)
    renewal = row.current_period_end if row.live and not cancelling else None
    return pb.PlanCard(
        subscription_id=row.subscription_id,
        plan=row.plan or "",
        status=row.status or "",
        price=money(price, currency),
        quantity=row.quantity or 0,
        interval=row.interval or "",
        interval_count=row.interval_count or 0,
        current_period_start=to_timestamp(row.current_period_start),
        renewal_at=to_timestamp(renewal),
        cancel_at_period_end=bool(row.cancel_at_period_end),
        cancel_at=to_timestamp(row.cancel_at),
        ended_at=to_timestamp(row.ended_at),
        trial_end=to_timestamp(row.trial_end),
        scheduled_plan=row.scheduled_plan or "",
        scheduled_mrr=money(row.scheduled_mrr, currency),
        scheduled_change_at=to_timestamp(row.scheduled_change_at),
        committed_mrr=money(row.committed_mrr, currency),
        forward_mrr=money(row.forward_mrr, currency),
    )


def billing_event_row(row: Row) -> pb.BillingEventRow:
    currency = row.currency
    carried = row.committed_mrr is None and row.mrr is not None
    return pb.BillingEventRow(
        id=row.id,
        stripe_event_id=row.stripe_event_id,
        stripe_event_type=row.stripe_event_type or "",
        event_type=row.event_type,
        account_id=row.account_id or "",
        stripe_customer_id=row.stripe_customer_id or "",
        subscription_id=row.subscription_id or "",
        from_plan=row.from_plan or "",
        to_plan=row.to_plan or "",
        previous_amount=money(row.previous_amount, currency),
        new_amount=money(row.new_amount, currency),
        amount_delta=money(row.amount_delta, currency),
        refund_amount=money(row.refund_amount, currency),
        committed_mrr=money(row.mrr, currency),
        committed_mrr_carried=carried,
        forward_mrr=money(row.forward_mrr, currency),
        occurred_at=to_timestamp(row.occurred_at),
        reason=row.reason or "",
        flags=list(row.flags or []),
        drift_detected=bool(row.drift_detected),
        lenses=lenses_of(row.event_type, bool(row.has_delta)),
    )


def invoice_row(row: Row) -> pb.InvoiceRow:
    currency = row.currency
    counted = row.revenue_amount is not None
    return pb.InvoiceRow(
        row_id=row.row_id,
        kind=row.kind,
        invoice_id=row.invoice_id,
        number=row.number or "",
        account_id=row.account_id or "",
        stripe_customer_id=row.stripe_customer_id or "",
        subscription_id=row.subscription_id or "",
        status=row.status or "",
        date=to_timestamp(row.row_at),
        amount=money(row.amount, currency),
        tax=money(row.tax, currency),
        amount_ex_tax=money(row.amount_ex_tax, currency),
        amount_paid=money(row.amount_paid, currency),
        hosted_invoice_url=row.hosted_invoice_url or "",
        invoice_pdf=row.invoice_pdf or "",
        paid_at=to_timestamp(row.paid_at),
        reason=row.reason or "",
        counts_toward_revenue=counted,
        revenue=money(row.revenue_amount, currency) if counted else None,
        revenue_at=to_timestamp(row.revenue_at) if counted else None,
        charge_id=row.charge_id or "",
        payment_intent_id=row.payment_intent_id or "",
        refundable=money(row.refundable, currency),
    )


__all__ = [
    "account_summary",
    "billing_event_row",
    "invoice_row",
    "money",
    "plan_card",
    "platform_money",
]
