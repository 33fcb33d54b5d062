"""Explicit links between Stripe customers and tenants (``ledger.customer_links``).

A link is operator input, not Stripe history: some Stripe customers carry no
``metadata.tenant_id`` (or a wrong one) and an operator or the host application says which
tenant they belong to. The account of a Stripe customer is ``link tenant ?? metadata tenant
?? customer id`` - the explicit link wins, because it is a later, deliberate correction of
whatever the host once wrote into Stripe. The projection never writes links and a replay never
touches them; the ``query_*`` read models follow link changes through the triggers of
migration ``0005_customer_links`` in the same transaction, so a read after
``LinkStripeCustomer`` returns already sees the customer under its tenant.

The tenant need not be in the directory yet (the host may feed it later), as with
``metadata.tenant_id``; both ids must be non-empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from billing.ledger.v1 import directory_pb2 as pb
from sqlalchemy import ColumnElement, and_, delete, func, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.common.paging import BadPageToken, decode_token, encode_token, page_size
from services.common.timeconv import to_timestamp
from services.ledger.directory.errors import InvalidArgument, NotFound
from services.ledger.directory.tables import customer_links
from services.ledger.directory.validation import bounded_text, optional_id, require_id

Row = Any


@dataclass(frozen=True, slots=True)
class LinkInput:
    stripe_customer_id: str
    tenant_id: str
    linked_by: str | None
    note: str | None


@dataclass(frozen=True, slots=True)
class LinkListQuery:
    tenant_id: str | None
    page_size: int
    after: str | None  # stripe_customer_id of the previous page's last link


def link_input(request: pb.LinkStripeCustomerRequest) -> LinkInput:
    return LinkInput(
        stripe_customer_id=require_id(request.stripe_customer_id, "stripe_customer_id"),
        tenant_id=require_id(request.tenant_id, "tenant_id"),
        linked_by=bounded_text(request.linked_by, "linked_by") or None,
        note=bounded_text(request.note, "note") or None,
    )


def link_list_query(request: pb.ListCustomerLinksRequest) -> LinkListQuery:
    try:
        size = page_size(request.page.page_size)
        key = decode_token(request.page.page_token)
    except (BadPageToken, ValueError) as exc:
        raise InvalidArgument(str(exc)) from exc
    after: str | None = None
    if key is not None:
        if len(key) != 2 or key[0] != "links" or not isinstance(key[1], str):
            raise InvalidArgument("malformed page_token")
        after = key[1]
    return LinkListQuery(
        tenant_id=optional_id(request.tenant_id, "tenant_id"), page_size=size, after=after
    )


def next_page_token(last: Row) -> str:
    return encode_token(["links", last.stripe_customer_id])


def link_message(row: Row) -> pb.CustomerLink:
    return pb.CustomerLink(
        stripe_customer_id=row.stripe_customer_id,
        tenant_id=row.tenant_id,
        linked_at=to_timestamp(row.linked_at),
        linked_by=row.linked_by or "",
        note=row.note or "",
    )


async def link_customer(conn: AsyncConnection, data: LinkInput) -> Row:
    """Create or replace the customer's link (one tenant per customer)."""
    stmt = pg_insert(customer_links).values(
        stripe_customer_id=data.stripe_customer_id,
        tenant_id=data.tenant_id,
        linked_at=func.now(),
        linked_by=data.linked_by,
        note=data.note,
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[customer_links.c.stripe_customer_id],
        set_={
            "tenant_id": stmt.excluded.tenant_id,
            "linked_at": stmt.excluded.linked_at,
            "linked_by": stmt.excluded.linked_by,
            "note": stmt.excluded.note,
        },
    ).returning(*customer_links.c)
    return (await conn.execute(upsert)).one()


async def unlink_customer(conn: AsyncConnection, stripe_customer_id: str) -> Row:
    row = (
        await conn.execute(
            delete(customer_links)
            .where(customer_links.c.stripe_customer_id == stripe_customer_id)
            .returning(*customer_links.c)
        )
    ).first()
    if row is None:
        raise NotFound(f"Stripe customer {stripe_customer_id!r} has no explicit link")
    return row


async def list_links(conn: AsyncConnection, q: LinkListQuery) -> tuple[list[Row], int]:
    """Up to ``page_size + 1`` links by stripe_customer_id, and the total count."""
    filters: list[ColumnElement[bool]] = [true()]
    if q.tenant_id is not None:
        filters.append(customer_links.c.tenant_id == q.tenant_id)
    page_filters = list(filters)
    if q.after is not None:
        page_filters.append(customer_links.c.stripe_customer_id > q.after)
    rows = (
        await conn.execute(
            select(*customer_links.c)
            .where(and_(*page_filters))
            .order_by(customer_links.c.stripe_customer_id)
            .limit(q.page_size + 1)
        )
    ).all()
    total = (
        await conn.execute(select(func.count()).select_from(customer_links).where(and_(*filters)))
    ).scalar_one()
    return list(rows), int(total)


__all__ = [
    "LinkInput",
    "LinkListQuery",
    "link_customer",
    "link_input",
    "link_list_query",
    "link_message",
    "list_links",
    "next_page_token",
    "unlink_customer",
]
