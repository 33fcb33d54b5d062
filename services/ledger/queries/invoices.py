"""The invoice list: ``ledger.query_invoice_rows`` (migration 0004), one row per invoice, per
credit note and per refund that no credit note covers, each dated by its own day
(credit note: ``credit_noted_at ?? refunded_at ?? invoice date``; refund:
``refunded_at ?? invoice date``) and carrying its net-revenue effect ex tax. The list's total
is read from ``query_invoice_daily`` (rows per day and kind, migration 0014) plus the partial
edge days of the period (:mod:`.daily_counts`, shared with the event list).

An invoice row also names the payment behind it and what is still refundable (read from the
payment read models the projection keeps: ``payments``, ``invoice_payments``, ``charges``),
so the back-office refunds a paid invoice without an operator typing a charge id. Read per
page row, not stored in ``query_invoice_rows``: the refund side changes with every
``charge.refunded`` and the projection already maintains exactly those columns."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    MetaData,
    Table,
    Text,
    and_,
    case,
    func,
    literal,
    select,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.directory.tables import customer_links
from services.ledger.queries.daily_counts import count_over_days, in_period
from services.ledger.queries.inputs import InvoiceLens, InvoiceListQuery
from services.ledger.queries.tables import accounts
from services.ledger.queries.tables import query_invoice_daily as qid
from services.ledger.queries.tables import query_invoice_rows as qir

Row = Any

REVERSAL_KINDS = ("credit_note", "refund")

# The payment read models (migrations 0002 and 0007), only the columns read here; their own
# MetaData so nothing collides with the query_* tables' definitions.
_payment_models = MetaData(schema="ledger")
payments = Table(
    "payments",
    _payment_models,
    Column("invoice_id", Text, primary_key=True),
    Column("status", Text),
    Column("amount_paid", BigInteger),
    Column("amount_refunded", BigInteger),
    Column("paid_at", DateTime(timezone=True)),
    Column("invoice_charge_id", Text),
    Column("payment_intent_id", Text),
)
invoice_payments = Table(
    "invoice_payments",
    _payment_models,
    Column("invoice_payment_id", Text, primary_key=True),
    Column("invoice_id", Text),
    Column("charge_id", Text),
    Column("state_event_created", DateTime(timezone=True)),
    Column("state_event_id", Text),
)
charges = Table(
    "charges",
    _payment_models,
    Column("charge_id", Text, primary_key=True),
    Column("payment_intent_id", Text),
    Column("status", Text),
    Column("charge_created", DateTime(timezone=True)),
)


def _payment_columns() -> list[ColumnElement[object]]:
    """charge_id, payment_intent_id and refundable of an invoice row (NULL on reversals).

    The charge: the invoice's own ``charge`` (legacy payload shapes), else the newest
    ``invoice_payment`` naming a charge, else the newest succeeded charge of the invoice's
    payment intent (basil and later: neither the invoice nor the invoice_payment of a card
    payment names the charge, ``charge.succeeded`` names the payment intent)."""
    by_invoice_payment = (
        select(invoice_payments.c.charge_id)
        .where(
            invoice_payments.c.invoice_id == payments.c.invoice_id,
            invoice_payments.c.charge_id.is_not(None),
        )
        .order_by(
            invoice_payments.c.state_event_created.desc(),
            invoice_payments.c.state_event_id.desc(),
        )
        .limit(1)
        .scalar_subquery()
    )
    by_intent = (
        select(charges.c.charge_id)
        .where(
            charges.c.payment_intent_id == payments.c.payment_intent_id,
            charges.c.status == "succeeded",
        )
        .order_by(charges.c.charge_created.desc(), charges.c.charge_id.desc())
        .limit(1)
        .scalar_subquery()
    )
    paid = and_(payments.c.paid_at.is_not(None), payments.c.amount_paid > 0)
    return [
        func.coalesce(payments.c.invoice_charge_id, by_invoice_payment, by_intent).label(
            "charge_id"
        ),
        payments.c.payment_intent_id.label("payment_intent_id"),
        case(
            (
                paid,
                func.greatest(
                    literal(0),
                    payments.c.amount_paid - func.coalesce(payments.c.amount_refunded, 0),
                ),
            ),
            else_=None,
        ).label("refundable"),
    ]


def _lens(lens: InvoiceLens, kind: Any = qir.c.kind) -> ColumnElement[bool]:
    if lens is InvoiceLens.INVOICES:
        return kind == "invoice"
    if lens is InvoiceLens.REVERSALS:
        return kind.in_(REVERSAL_KINDS)  # type: ignore[no-any-return]
    return true()


def _filters(q: InvoiceListQuery, customers: list[str] | None) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = [_lens(q.lens), *in_period(qir.c.row_at, q.period)]
    if customers is not None:
        filters.append(qir.c.stripe_customer_id.in_(customers))
    return filters


async def list_invoices(
    conn: AsyncConnection, q: InvoiceListQuery, customers: list[str] | None
) -> tuple[list[Row], int]:
    filters = _filters(q, customers)
    page_filters = list(filters)
    key = tuple_(qir.c.row_at, qir.c.row_id)
    if q.after is not None:
        bound = tuple_(*q.after)
        page_filters.append(key > bound if q.oldest_first else key < bound)
    order = (
        [qir.c.row_at.asc(), qir.c.row_id.asc()]
        if q.oldest_first
        else [qir.c.row_at.desc(), qir.c.row_id.desc()]
    )
    rows = (
        await conn.execute(
            select(
                *qir.c,
                func.coalesce(
                    customer_links.c.tenant_id, accounts.c.tenant_id, qir.c.stripe_customer_id
                ).label("account_id"),
                *_payment_columns(),
            )
            .select_from(
                qir.outerjoin(
                    accounts, accounts.c.stripe_customer_id == qir.c.stripe_customer_id
                )
                .outerjoin(
                    customer_links,
                    customer_links.c.stripe_customer_id == qir.c.stripe_customer_id,
                )
                .outerjoin(
                    payments,
                    and_(qir.c.kind == "invoice", payments.c.invoice_id == qir.c.invoice_id),
                )
            )
            .where(and_(true(), *page_filters))
            .order_by(*order)
            .limit(q.page_size + 1)
        )
    ).all()
    if customers is not None:  # one account's rows: an index range of its own
        total = await count_invoices_by_rows(conn, q, customers)
    else:  # whole days from query_invoice_daily (0014), the edge days by the row_at index
        total = await count_over_days(
            conn,
            q.period,
            daily=qid,
            daily_where=_lens(q.lens, qid.c.kind),
            rows=qir,
            rows_at=qir.c.row_at,
            rows_where=_lens(q.lens),
        )
    return list(rows), total


async def count_invoices_by_rows(
    conn: AsyncConnection, q: InvoiceListQuery, customers: list[str] | None
) -> int:
    """The list's total counted row by row (the definition the daily counts must equal)."""
    return int(
        (
            await conn.execute(
                select(func.count()).select_from(qir).where(and_(true(), *_filters(q, customers)))
            )
        ).scalar_one()
    )


__all__ = ["REVERSAL_KINDS", "count_invoices_by_rows", "list_invoices"]
