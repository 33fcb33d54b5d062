"""``billing.ingest.v1.IngestService``: the archive, read and repaired over gRPC.

Errors are raised as :mod:`services.common.grpc_errors` exceptions (or escape as database
errors) and mapped to status codes by the server's one error-mapping interceptor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import grpc
import stripe
from billing.common.v1 import common_pb2
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from sqlalchemy import Select, and_, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.binary_rows import fetch_binary
from services.common.grpc_errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.common.nats_link import BrokerUnavailable
from services.common.paging import (
    BadPageToken,
    decode_token,
    encode_token,
    int_key,
    page_size,
)
from services.common.timeconv import fill_timestamp, from_timestamp, micros, to_timestamp
from services.ingest.archive import ArchiveUnavailable, ArchiveWriter
from services.ingest.event_list import (
    EventListQuery,
    checked_id,
    event_list_query,
    list_events,
)
from services.ingest.models import payload_divergences, stripe_events
from services.ingest.publisher import OutboxPublisher
from services.ingest.recovery import recover_events

# The methods a read token may call (see services.common.grpc_auth); the rest need admin.
READ_ONLY_METHODS = frozenset(
    {"GetEvent", "ListEvents", "StreamArchive", "StreamArchiveBatches", "ListDivergences"}
)
STREAM_CHUNK = 2_000
# Well under gRPC's default 4 MiB message limit.
BATCH_MESSAGE_BYTES = 1024 * 1024
#: Events per ``ids_only`` page (two short columns: ~0.5 MB a message).
IDS_PAGE = 10_000
_SOURCES = {
    "webhook": ingest_pb2.RECOVERY_SOURCE_WEBHOOK,
    "events_list": ingest_pb2.RECOVERY_SOURCE_EVENTS_LIST,
}
_META = [
    stripe_events.c.archive_seq,
    stripe_events.c.event_id,
    stripe_events.c.event_type,
    stripe_events.c.api_version,
    stripe_events.c.payload_sha256,
    stripe_events.c.recovery_source,
    stripe_events.c.received_at,
    stripe_events.c.published_at,
    stripe_events.c.stripe_created_at,
    stripe_events.c.livemode,
    stripe_events.c.account,
    stripe_events.c.recovered_at,
    stripe_events.c.stripe_customer_id,
]

#: What ``payload_only`` streams carry (and the keyset needs).
_SLIM = (stripe_events.c.event_id, stripe_events.c.stripe_created_at, stripe_events.c.payload)

def _key_items(key: list[object], count: int) -> list[object]:
    if len(key) != count:
        raise BadPageToken("malformed page_token")
    return key


def _event_message(row: Any, payload: bytes | None) -> ingest_pb2.ArchivedEvent:
    return ingest_pb2.ArchivedEvent(
        archive_seq=row.archive_seq,
        event_id=row.event_id,
        type=row.event_type,
        api_version=row.api_version or "",
        payload_sha256=bytes(row.payload_sha256).hex(),
        recovery_source=_SOURCES.get(row.recovery_source, ingest_pb2.RECOVERY_SOURCE_UNSPECIFIED),
        received_at=to_timestamp(row.received_at),
        published_at=to_timestamp(row.published_at),
        stripe_created_at=to_timestamp(row.stripe_created_at),
        livemode=row.livemode,
        account=row.account or "",
        recovered_at=to_timestamp(row.recovered_at),
        stripe_customer_id=row.stripe_customer_id or "",
        payload=payload or b"",
    )


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    """Reads go straight to PostgreSQL; writes go through the same writer as webhooks."""

    def __init__(
        self,
        engine: AsyncEngine,
        writer: ArchiveWriter,
        publisher: OutboxPublisher,
        stripe_client: stripe.StripeClient,
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._publisher = publisher
        self._stripe = stripe_client

    async def GetEvent(
        self, request: ingest_pb2.GetEventRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.ArchivedEvent:
        event_id = checked_id(request.event_id)
        columns = [*_META, stripe_events.c.payload] if request.include_payload else _META
        row = await self._first(select(*columns).where(stripe_events.c.event_id == event_id))
        if row is None:
            raise NotFound(f"event {event_id} not archived")
        return _event_message(row, bytes(row.payload) if request.include_payload else None)

    async def ListEvents(
        self, request: ingest_pb2.ListEventsRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.ListEventsResponse:
        q = event_list_query(request)
        if request.ids_only:
            return await self._list_event_ids(request, q)
        columns = [*_META, stripe_events.c.payload] if request.include_payload else _META
        async with self._engine.connect() as conn:
            rows, total = await list_events(conn, q, columns)
        more = len(rows) > q.size
        rows = rows[: q.size]
        token = (
            encode_token([micros(rows[-1].stripe_created_at), rows[-1].event_id])
            if more and rows
            else ""
        )
        return ingest_pb2.ListEventsResponse(
            events=[
                _event_message(r, bytes(r.payload) if request.include_payload else None)
                for r in rows
            ],
            page=common_pb2.PageInfo(next_page_token=token, total_count=total),
        )

    async def _list_event_ids(
        self, request: ingest_pb2.ListEventsRequest, q: EventListQuery
    ) -> ingest_pb2.ListEventsResponse:
        """``ids_only``: the same filters, order and token, two columns, no count, and pages
        of up to IDS_PAGE (drift's archive diff read 500 full rows a call, counting the
        whole window each time)."""
        if request.include_payload:
            raise InvalidArgument("ids_only excludes include_payload")
        q = replace(q, size=min(request.page.page_size or IDS_PAGE, IDS_PAGE))
        columns = [stripe_events.c.event_id, stripe_events.c.stripe_created_at]
        async with self._engine.connect() as conn:
            rows, _ = await list_events(conn, q, columns, count=False)
        more = len(rows) > q.size
        rows = rows[: q.size]
        response = ingest_pb2.ListEventsResponse()
        for row in rows:
            event = response.events.add()  # filled in place: no message per event
            event.event_id = row.event_id
            fill_timestamp(event.stripe_created_at, row.stripe_created_at)
        if more and rows:
            response.page.next_page_token = encode_token(
                [micros(rows[-1].stripe_created_at), rows[-1].event_id]
            )
        return response

    async def StreamArchive(
        self, request: ingest_pb2.StreamArchiveRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ingest_pb2.ArchivedEvent]:
        async for rows in self._archive_chunks(request, context):
            for row in rows:
                yield _event_message(row, bytes(row.payload))

    async def StreamArchiveBatches(
        self, request: ingest_pb2.StreamArchiveRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ingest_pb2.ArchivedEventBatch]:
        batch = ingest_pb2.ArchivedEventBatch()
        size = 0
        slim = request.payload_only
        async for rows in self._archive_chunks(request, context):
            for row in rows:
                event = batch.events.add()
                if slim:  # filled in place: no message per event, no copy of the payload
                    event.event_id = row.event_id
                    fill_timestamp(event.stripe_created_at, row.stripe_created_at)
                    event.payload = row.payload
                else:
                    event.CopyFrom(_event_message(row, bytes(row.payload)))
                size += len(row.payload) + 200
                if size >= BATCH_MESSAGE_BYTES:
                    yield batch
                    batch = ingest_pb2.ArchivedEventBatch()
                    size = 0
        if batch.events:
            yield batch

    async def _archive_chunks(
        self, request: ingest_pb2.StreamArchiveRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Sequence[Any]]:
        """Rows of [since, until) in (stripe_created_at, event_id) order, by keyset chunks.

        Each chunk is its own short query, so a long rebuild never holds one snapshot (and
        its vacuum horizon) open for minutes.
        """
        since = from_timestamp(request.since, request.HasField("since"))
        until = from_timestamp(request.until, request.HasField("until"))
        bounds = []
        if since is not None:
            bounds.append(stripe_events.c.stripe_created_at >= since)
        if until is not None:
            bounds.append(stripe_events.c.stripe_created_at < until)
        last: tuple[datetime, str] | None = None
        while True:
            conditions = list(bounds)
            if last is not None:
                conditions.append(
                    tuple_(stripe_events.c.stripe_created_at, stripe_events.c.event_id)
                    > tuple_(*last)
                )
            columns = _SLIM if request.payload_only else (*_META, stripe_events.c.payload)
            query = (
                select(*columns)
                .where(and_(True, *conditions))
                .order_by(stripe_events.c.stripe_created_at, stripe_events.c.event_id)
                .limit(STREAM_CHUNK)
            )
            async with self._engine.connect() as conn:
                rows = await fetch_binary(conn, query)
            yield rows
            if len(rows) < STREAM_CHUNK:
                return
            last = (rows[-1].stripe_created_at, rows[-1].event_id)

    async def RecoverEvents(
        self, request: ingest_pb2.RecoverEventsRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.RecoverEventsResponse:
        since_at = from_timestamp(request.since, request.HasField("since"))
        since = int(since_at.timestamp()) if since_at is not None else None
        customer = checked_id(request.customer, "customer", required=False) or None
        try:
            report = await recover_events(
                self._stripe, self._writer, since=since, customer=customer
            )
        except stripe.AuthenticationError as exc:
            raise FailedPrecondition(f"stripe refused: {exc.user_message or exc}") from exc
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            raise Unavailable(f"stripe unavailable: {exc.user_message or exc}") from exc
        except ArchiveUnavailable as exc:
            raise Unavailable("archive unavailable, retry later") from exc
        return ingest_pb2.RecoverEventsResponse(
            examined=report.examined,
            appended=report.appended,
            appended_event_ids=report.appended_event_ids,
        )

    async def RepublishEvent(
        self, request: ingest_pb2.RepublishEventRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.RepublishEventResponse:
        event_id = checked_id(request.event_id)
        try:
            published_at = await self._publisher.republish(event_id)
        except BrokerUnavailable as exc:
            raise Unavailable("NATS unavailable, retry later") from exc
        if published_at is None:
            raise NotFound(f"event {event_id} not archived")
        return ingest_pb2.RepublishEventResponse(published_at=to_timestamp(published_at))

    async def ListDivergences(
        self, request: ingest_pb2.ListDivergencesRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.ListDivergencesResponse:
        size = page_size(request.page.page_size)
        key = decode_token(request.page.page_token)
        table = payload_divergences
        event_id = checked_id(request.event_id, required=False)
        filters = [table.c.event_id == event_id] if event_id else []
        page_filters = list(filters)
        if key is not None:
            (last_id,) = _key_items(key, 1)
            page_filters.append(table.c.id > int_key(last_id))
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(table)
                    .where(and_(True, *page_filters))
                    .order_by(table.c.id)
                    .limit(size + 1)
                )
            ).all()
            total = (
                await conn.execute(
                    select(func.count()).select_from(table).where(and_(True, *filters))
                )
            ).scalar_one()
        more = len(rows) > size
        rows = rows[:size]
        return ingest_pb2.ListDivergencesResponse(
            divergences=[
                ingest_pb2.Divergence(
                    id=r.id,
                    event_id=r.event_id,
                    original_sha256=bytes(r.original_sha256).hex(),
                    divergent_sha256=bytes(r.divergent_sha256).hex(),
                    received_at=to_timestamp(r.received_at),
                    divergent_payload=bytes(r.divergent_payload),
                )
                for r in rows
            ],
            page=common_pb2.PageInfo(
                next_page_token=encode_token([rows[-1].id]) if more else "", total_count=total
            ),
        )

    async def _first(self, query: Select[Any]) -> Any:
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).first()


__all__ = ["IngestServicer"]
