"""The archive's list read (``ListEvents``): a request turned into a checked query, and the
query itself, newest Stripe ``created`` first with keyset paging.

Filters: exact type, a period on Stripe ``created``, recovered-only, the Stripe customers the
events are about (``stripe_customer_id``, derived at archive time and indexed, migration 0013)
and the publish outcome (published / not yet published: the archive is the outbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing.ingest.v1 import ingest_pb2
from sqlalchemy import ColumnElement, and_, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from services.common.grpc_errors import InvalidArgument
from services.common.paging import BadPageToken, decode_token, page_size, text_key, time_key
from services.common.timeconv import from_timestamp
from services.ingest.models import stripe_events

MAX_ID = 255
#: Customer ids per request: an account has a handful; more is a mistake, not a query.
MAX_CUSTOMERS = 100

_OUTCOMES = {
    ingest_pb2.PUBLISH_OUTCOME_UNSPECIFIED: None,
    ingest_pb2.PUBLISH_OUTCOME_PUBLISHED: "published",
    ingest_pb2.PUBLISH_OUTCOME_PENDING: "pending",
}


def checked_id(value: str, field: str = "event_id", *, required: bool = True) -> str:
    """A Stripe id from a request: bounded, printable (no NUL or control characters)."""
    if not value:
        if required:
            raise InvalidArgument(f"{field} is required")
        return value
    if len(value) > MAX_ID or not value.isprintable():
        raise InvalidArgument(f"{field} must be at most {MAX_ID} printable characters")
    return value


@dataclass(frozen=True)
class EventListQuery:
    type: str
    since: datetime | None
    until: datetime | None
    recovered_only: bool
    customers: tuple[str, ...]
    outcome: str | None  # None: any; "published" | "pending"
    size: int
    after: tuple[datetime, str] | None  # (stripe_created_at, event_id) of the last row shown


def event_list_query(request: ingest_pb2.ListEventsRequest) -> EventListQuery:
    """Check a ListEvents request: a bad value is INVALID_ARGUMENT naming it."""
    if len(request.customers) > MAX_CUSTOMERS:
        raise InvalidArgument(f"customers: at most {MAX_CUSTOMERS} ids")
    customers = tuple(
        dict.fromkeys(checked_id(c, "customers") for c in request.customers)
    )
    if request.outcome not in _OUTCOMES:
        raise InvalidArgument(f"outcome: unknown value {request.outcome}")
    key = decode_token(request.page.page_token)
    after = None
    if key is not None:
        if len(key) != 2:
            raise BadPageToken("malformed page_token")
        after = (time_key(key[0]), text_key(key[1]))
    return EventListQuery(
        type=request.type,
        since=from_timestamp(request.created.start, request.created.HasField("start")),
        until=from_timestamp(request.created.end, request.created.HasField("end")),
        recovered_only=request.recovered_only,
        customers=customers,
        outcome=_OUTCOMES[request.outcome],
        size=page_size(request.page.page_size),
        after=after,
    )


def _filters(q: EventListQuery) -> list[ColumnElement[bool]]:
    c = stripe_events.c
    filters: list[ColumnElement[bool]] = []
    if q.type:
        filters.append(c.event_type == q.type)
    if q.since is not None:
        filters.append(c.stripe_created_at >= q.since)
    if q.until is not None:
        filters.append(c.stripe_created_at < q.until)
    if q.recovered_only:
        filters.append(c.recovery_source == "events_list")
    if q.customers:
        filters.append(c.stripe_customer_id.in_(q.customers))
    if q.outcome == "published":
        filters.append(c.published_at.is_not(None))
    elif q.outcome == "pending":
        filters.append(c.published_at.is_(None))
    return filters


async def list_events(
    conn: AsyncConnection, q: EventListQuery, columns: Sequence[Any], *, count: bool = True
) -> tuple[list[Any], int]:
    """One page (up to ``q.size + 1`` rows, the extra one says there is more) and the total
    (0 when not ``count``: the count walks every row of the filter, each page again)."""
    filters = _filters(q)
    page_filters = list(filters)
    key = tuple_(stripe_events.c.stripe_created_at, stripe_events.c.event_id)
    if q.after is not None:
        page_filters.append(key < tuple_(*q.after))
    rows = (
        await conn.execute(
            select(*columns)
            .where(and_(True, *page_filters))
            .order_by(stripe_events.c.stripe_created_at.desc(), stripe_events.c.event_id.desc())
            .limit(q.size + 1)
        )
    ).all()
    if not count:
        return list(rows), 0
    total = (
        await conn.execute(
            select(func.count()).select_from(stripe_events).where(and_(True, *filters))
        )
    ).scalar_one()
    return list(rows), int(total)


__all__ = ["MAX_CUSTOMERS", "EventListQuery", "checked_id", "event_list_query", "list_events"]
