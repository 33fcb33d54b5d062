"""Replay the ingest archive into the ledger (or into a scratch schema, for VerifyLedger).

The archive arrives over ``IngestService.StreamArchive`` in ``(stripe_created_at, event_id)``
order and is applied in batches, each in its own transaction; the projection is idempotent,
so a replay over a full ledger applies nothing and an interrupted replay can simply be run
again. Reading the stream, projecting (CPU: JSON, resolvers, classifier) and writing
(PostgreSQL) overlap: the reader fills a bounded queue, projection runs in a process pool
when one is given, and the writer commits the previous batch meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime

from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.timeconv import to_timestamp
from services.ledger.db import raw_transaction
from services.ledger.effects import Effects, project_event
from services.ledger.projection import apply_batch

REPLAYED = Counter("ledger_replayed_events_total", "Archived events examined by replays")


@dataclass(slots=True)
class ReplayReport:
    examined: int = 0
    applied: int = 0
    unsupported: int = 0
    unreadable: int = 0
    seconds: float = 0.0
    #: (stripe_created_at, event_id) of the last event streamed: the archive's horizon.
    horizon: tuple[datetime, str] | None = None


def project_many(payloads: Sequence[bytes]) -> list[Effects | None]:
    """Project each payload; ``None`` for an unreadable one (runs in a worker process)."""
    out: list[Effects | None] = []
    for payload in payloads:
        try:
            out.append(project_event(payload))
        except Exception:
            out.append(None)
    return out


async def archive_batches(
    stub: ingest_pb2_grpc.IngestServiceStub,
    *,
    since: datetime | None,
    until: datetime | None,
    batch_size: int,
) -> AsyncIterator[tuple[list[bytes], tuple[datetime, str] | None]]:
    """The archive as batches of payloads, each with the (created, id) of its last event."""
    request = ingest_pb2.StreamArchiveRequest(since=to_timestamp(since), until=to_timestamp(until))
    call = stub.StreamArchiveBatches(request)
    batch: list[bytes] = []
    last: ingest_pb2.ArchivedEvent | None = None
    async for chunk in call:  # type: ignore[attr-defined]
        for event in chunk.events:
            batch.append(event.payload)
            last = event
        if len(batch) >= batch_size:
            yield batch, _version(last)
            batch = []
    if batch:
        yield batch, _version(last)


def _version(event: ingest_pb2.ArchivedEvent | None) -> tuple[datetime, str] | None:
    if event is None:
        return None
    created: Timestamp = event.stripe_created_at
    return created.ToDatetime().replace(tzinfo=UTC), event.event_id


async def replay_archive(
    engine: AsyncEngine,
    stub: ingest_pb2_grpc.IngestServiceStub,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_size: int = 2000,
    schema: str = "ledger",
    executor: Executor | None = None,
) -> ReplayReport:
    """Stream the archive and apply it batch by batch; returns the counts."""
    started = time.perf_counter()
    report = ReplayReport()
    queue: asyncio.Queue[tuple[list[Effects | None], tuple[datetime, str] | None] | None]
    queue = asyncio.Queue(maxsize=2)
    loop = asyncio.get_running_loop()

    async def produce() -> None:
        async for payloads, horizon in archive_batches(
            stub, since=since, until=until, batch_size=batch_size
        ):
            if executor is not None:
                projected = await loop.run_in_executor(executor, project_many, payloads)
            else:
                projected = project_many(payloads)
            await queue.put((projected, horizon))
        await queue.put(None)

    producer = asyncio.create_task(produce(), name="replay-reader")
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                producer.result()  # the reader failed: raise its error
                continue
            item = getter.result()
            if item is None:
                break
            projected, horizon = item
            readable = [e for e in projected if e is not None]
            report.examined += len(projected)
            report.unreadable += len(projected) - len(readable)
            REPLAYED.inc(len(projected))
            async with raw_transaction(engine) as conn:
                result = await apply_batch(conn, readable, schema=schema)
            report.applied += result.applied
            report.unsupported += result.unsupported
            report.horizon = horizon or report.horizon
        await producer
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer
    report.seconds = time.perf_counter() - started
    return report
