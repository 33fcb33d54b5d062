"""The invoice list: ``ledger.query_invoice_rows`` (migration 0004), one row per invoice, per
credit note and per refund that no credit note covers, each dated by its own day
(credit note: ``credit_noted_at ?? refunded_at ?? invoice date``; refund:
``refunded_at ?? invoice date``) and carrying its net-revenue effect ex tax."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.directory.tables import customer_links
from services.ledger.queries.inputs import InvoiceLens, InvoiceListQuery
from services.ledger.queries.tables import accounts
from services.ledger.queries.tables import query_invoice_rows as qir

Row = Any

REVERSAL_KINDS = ("credit_note", "refund")


def _lens(lens: InvoiceLens) -> ColumnElement[bool]:
    if lens is InvoiceLens.INVOICES:
        return qir.c.kind == "invoice"
    if lens is InvoiceLens.REVERSALS:
        return qir.c.kind.in_(REVERSAL_KINDS)
    return true()


async def list_invoices(
    conn: AsyncConnection, q: InvoiceListQuery, customers: list[str] | None
) -> tuple[list[Row], int]:
    filters: list[ColumnElement[bool]] = [_lens(q.lens)]
    if customers is not None:
        filters.append(qir.c.stripe_customer_id.in_(customers))
    if q.period.start is not None:
        filters.append(qir.c.row_at >= q.period.start)
    if q.period.end is not None:
        filters.append(qir.c.row_at < q.period.end)
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
            )
            .select_from(
                qir.outerjoin(
                    accounts, accounts.c.stripe_customer_id == qir.c.stripe_customer_id
                ).outerjoin(
                    customer_links,
                    customer_links.c.stripe_customer_id == qir.c.stripe_customer_id,
                )
            )
            .where(and_(true(), *page_filters))
            .order_by(*order)
            .limit(q.page_size + 1)
        )
    ).all()
    total = (
        await conn.execute(select(func.count()).select_from(qir).where(and_(true(), *filters)))
    ).scalar_one()
    return list(rows), int(total)


__all__ = ["REVERSAL_KINDS", "list_invoices"]
