"""Invoices, with credit notes and refunds as their own (negative) rows beside them."""

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
    "all": q.INVOICE_LENS_ALL,
    "invoices": q.INVOICE_LENS_INVOICES,
    "reversals": q.INVOICE_LENS_REVERSALS,
}


@dataclass(frozen=True)
class InvoiceRowView:
    row_id: str
    kind: str
    invoice_id: str
    number: str
    account_id: str
    stripe_customer_id: str
    subscription_id: str
    status: str
    date: datetime | None
    amount: Money | None
    tax: Money | None
    amount_ex_tax: Money | None
    amount_paid: Money | None
    hosted_invoice_url: str
    invoice_pdf: str
    paid_at: datetime | None
    reason: str
    counts_toward_revenue: bool
    revenue: Money | None
    revenue_at: datetime | None
    charge_id: str = ""  # invoices: the payment behind it, what a refund names
    payment_intent_id: str = ""
    refundable: Money | None = None  # paid invoices: what Stripe would still refund

    @property
    def can_refund(self) -> bool:
        """A paid invoice with a known payment and something left to refund."""
        return (
            self.kind == "invoice"
            and bool(self.charge_id or self.payment_intent_id)
            and self.refundable is not None
            and self.refundable.amount_minor > 0
        )

    @property
    def payment_id(self) -> str:
        """The id a refund names: the charge, else the payment intent."""
        return self.charge_id or self.payment_intent_id


def invoice_row(r: q.InvoiceRow) -> InvoiceRowView:
    return InvoiceRowView(
        row_id=r.row_id,
        kind=r.kind,
        invoice_id=r.invoice_id,
        number=r.number,
        account_id=r.account_id,
        stripe_customer_id=r.stripe_customer_id,
        subscription_id=r.subscription_id,
        status=r.status,
        date=field_time(r, "date"),
        amount=field_money(r, "amount"),
        tax=field_money(r, "tax"),
        amount_ex_tax=field_money(r, "amount_ex_tax"),
        amount_paid=field_money(r, "amount_paid"),
        hosted_invoice_url=r.hosted_invoice_url,
        invoice_pdf=r.invoice_pdf,
        paid_at=field_time(r, "paid_at"),
        reason=r.reason,
        counts_toward_revenue=r.counts_toward_revenue,
        revenue=field_money(r, "revenue"),
        revenue_at=field_time(r, "revenue_at"),
        charge_id=r.charge_id,
        payment_intent_id=r.payment_intent_id,
        refundable=field_money(r, "refundable"),
    )


@dataclass(frozen=True)
class InvoiceFilters:
    account_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    lens: str = "all"
    oldest_first: bool = False
    page_size: int = 50
    page_token: str = ""


def list_invoices(backends: Backends, f: InvoiceFilters) -> Page[InvoiceRowView]:
    answer = backends.call(
        "ledger",
        backends.ledger.ListInvoices,
        q.ListInvoicesRequest(
            account_id=f.account_id,
            period=period(f.since, f.until),
            lens=LENSES[f.lens],
            oldest_first=f.oldest_first,
            page=page_request(f.page_size, f.page_token),
        ),
    )
    return Page(
        [invoice_row(r) for r in answer.rows],
        answer.page.next_page_token,
        answer.page.total_count,
    )
