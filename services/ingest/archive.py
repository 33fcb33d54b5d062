"""Writing to the archive: group commit, idempotence and the divergence log.

A webhook is acknowledged only after its bytes are committed. One commit per request caps a
2-core machine at a few hundred webhooks per second (each commit waits for the WAL flush), so
requests queue here and a writer commits everything that arrived during the previous commit
in one transaction (group commit). Each request still learns its own outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import psycopg
from prometheus_client import Counter, Histogram
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.db_errors import refused_value
from services.ingest import pg_arrays
from services.ingest.envelope import IncomingEvent
from services.ingest.models import payload_divergences, stripe_events

log = logging.getLogger(__name__)

BATCH_SIZE = Histogram(
    "ingest_archive_batch_size",
    "Events committed per archive transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
# How long one group commit takes (the INSERT and its WAL flush, as the writer sees it): with
# the batch sizes, what a webhook's latency is made of besides its wait in the queue (issue 12
# goal 3's p99 at concurrency 64).
COMMIT_SECONDS = Histogram(
    "ingest_archive_commit_seconds",
    "Duration of one archive transaction (group commit), seconds",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0),
)
BATCH_FAILURES = Counter("ingest_archive_batch_failures_total", "Archive transactions that failed")


class ArchiveOutcome(StrEnum):
    """What archiving one delivery did."""

    ARCHIVED = "archived"  # new event, committed
    DUPLICATE = "duplicate"  # same id, same content: nothing new
    DIVERGENT = "divergent"  # same id, other bytes: original kept, variant logged


class ArchiveUnavailable(RuntimeError):
    """The database could not commit the event (down, timed out, or the queue is full)."""


class ArchiveRejected(ValueError):
    """The database refuses a value of this event (a client's mistake: answer 400)."""


@dataclass(slots=True)
class _Pending:
    event: IncomingEvent
    recovery_source: str
    recovered_at: datetime | None
    future: asyncio.Future[ArchiveOutcome] = field(repr=False)


@dataclass(slots=True)
class CommittedEvent:
    """What the publisher needs of a newly archived event."""

    # Not frozen, as envelope.IncomingEvent (issue 12): made per webhook, never mutated.

    event_id: str
    event_type: str
    payload: bytes


class ArchiveWriter:
    """Accepts events from many coroutines and commits them in shared transactions."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        on_committed: Callable[[Sequence[CommittedEvent]], None] = lambda _: None,
        max_batch: int = 500,
        writers: int = 2,
        max_queue: int = 20_000,
    ) -> None:
        self._engine = engine
        self._on_committed = on_committed
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max_queue)
        self._tasks = [
            asyncio.create_task(self._run(), name=f"archive-writer-{i}") for i in range(writers)
        ]

    async def archive(
        self,
        event: IncomingEvent,
        *,
        recovery_source: str = "webhook",
        recovered_at: datetime | None = None,
        timeout: float | None = None,
    ) -> ArchiveOutcome:
        """Commit ``event`` (or find it already archived) and say what happened.

        ``timeout``: seconds to wait for the commit, then :class:`ArchiveUnavailable` (the
        batch may still commit later; a retry then finds the event a duplicate).
        """
        return await self.submit(
            event, recovery_source=recovery_source, recovered_at=recovered_at, timeout=timeout
        )

    def submit(
        self,
        event: IncomingEvent,
        *,
        recovery_source: str = "webhook",
        recovered_at: datetime | None = None,
        timeout: float | None = None,
    ) -> asyncio.Future[ArchiveOutcome]:
        """Queue ``event`` for the next group commit; the future gets :meth:`archive`'s answer.

        Not a coroutine: the webhook server answers from the future's callback, without a
        task per request (issue 12). The deadline is one timer handle on the future (cancelled
        when the future is done, e.g. when its awaiter is cancelled), not an
        ``asyncio.timeout`` block. Raises :class:`ArchiveUnavailable` when the queue is full.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ArchiveOutcome] = loop.create_future()
        try:
            self._queue.put_nowait(_Pending(event, recovery_source, recovered_at, future))
        except asyncio.QueueFull as exc:
            raise ArchiveUnavailable("archive queue is full") from exc
        if timeout is not None:
            timer = loop.call_later(timeout, _expire, future)
            future.add_done_callback(lambda _done: timer.cancel())
        return future

    async def _run(self) -> None:
        held = _HeldConnection(self._engine)
        try:
            while True:
                first = await self._queue.get()
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except asyncio.QueueEmpty:
                        break
                await self._commit_batch(batch, held)
        finally:
            await held.close()

    async def _commit_batch(self, batch: list[_Pending], held: _HeldConnection) -> None:
        started = time.perf_counter()
        try:
            outcomes, committed = await write_batch(await held.get(), batch)
        except asyncio.CancelledError:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(ArchiveUnavailable("shutting down"))
            raise
        except Exception as exc:
            BATCH_FAILURES.inc()
            await held.discard()  # whatever broke, the next batch starts on a fresh connection
            if refused_value(exc):
                await self._commit_one_by_one(batch, held)
                return
            log.warning("archive batch failed", extra={"size": len(batch), "error": repr(exc)})
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(ArchiveUnavailable(repr(exc)))
            return
        COMMIT_SECONDS.observe(time.perf_counter() - started)
        BATCH_SIZE.observe(len(batch))
        for item, outcome in zip(batch, outcomes, strict=True):
            if not item.future.done():
                item.future.set_result(outcome)
        if committed:
            self._on_committed(committed)

    async def _commit_one_by_one(self, batch: list[_Pending], held: _HeldConnection) -> None:
        """A value of the batch was refused: commit each event on its own, so only the event
        that holds the value is refused (400) and its batch-mates are archived as usual."""
        if len(batch) > 1:
            for item in batch:
                await self._commit_batch([item], held)
            return
        (item,) = batch
        log.info("archive refused an event", extra={"event_id": item.event.event_id[:80]})
        if not item.future.done():
            item.future.set_exception(ArchiveRejected("the database refuses a value of this event"))

    async def close(self) -> None:
        """Commit what is queued, then stop the writers."""
        while not self._queue.empty():
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _HeldConnection:
    """One writer's connection, checked out of the pool once and kept between batches.

    Why (issue 12): checking a connection out and in per group commit (the pool's
    bookkeeping, setting autocommit and resetting it, the async adapter's greenlet hops) was
    ~3% of the ingest process's CPU in the profile, for nothing a batch needs. Autocommit
    (the INSERT is its own transaction, ONE round trip instead of BEGIN, INSERT, COMMIT; the
    rare follow-ups of repeated ids commit on their own; if one fails, the batch answers 503
    although its new events are archived: the sender's retry then finds them duplicate and
    the outbox sweeper publishes them). After any failure the connection is invalidated and
    the next batch checks out a new one, so a broken connection never serves twice.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    async def get(self) -> AsyncConnection:
        if self._conn is None:
            conn = await self._engine.connect()
            try:
                self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            except BaseException:
                await conn.close()
                raise
        return self._conn

    async def discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


def _expire(future: asyncio.Future[ArchiveOutcome]) -> None:
    if not future.done():
        future.set_exception(ArchiveUnavailable("the commit did not finish in time"))


async def write_batch(
    conn: AsyncConnection, batch: Sequence[_Pending]
) -> tuple[list[ArchiveOutcome], list[CommittedEvent]]:
    """Insert new events, classify repeats as duplicate or divergent (the INSERT is one
    statement: committed as a whole, or not at all)."""
    first_by_id: dict[str, _Pending] = {}
    for item in batch:
        first_by_id.setdefault(item.event.event_id, item)
    # Binary parameters (``%b`` in the statement): see INSERT_BATCH_SQL.
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    columns = _columns(first_by_id.values())
    if pg_arrays.usable(driver.info.encoding):
        columns = _encoded(columns)
    cursor = await driver.execute(INSERT_BATCH_SQL, columns, binary=True)
    inserted = {row[0] for row in await cursor.fetchall()}
    repeats = [
        item
        for item in batch
        if item.event.event_id not in inserted or first_by_id[item.event.event_id] is not item
    ]
    existing = await _existing(conn, {item.event.event_id for item in repeats})

    outcomes: list[ArchiveOutcome] = []
    divergences: list[dict[str, object]] = []
    for item in batch:
        event = item.event
        if event.event_id in inserted and first_by_id[event.event_id] is item:
            outcomes.append(ArchiveOutcome.ARCHIVED)
            continue
        original = existing[event.event_id]
        if _same_content(original, item):
            outcomes.append(ArchiveOutcome.DUPLICATE)
            continue
        outcomes.append(ArchiveOutcome.DIVERGENT)
        divergences.append(
            {
                "event_id": event.event_id,
                "original_sha256": original.sha256,
                "divergent_sha256": event.payload_sha256,
                "divergent_payload": event.payload,
            }
        )
    if divergences:
        await conn.execute(pg_insert(payload_divergences).on_conflict_do_nothing(), divergences)
    committed = [
        CommittedEvent(item.event.event_id, item.event.event_type, item.event.payload)
        for item in first_by_id.values()
        if item.event.event_id in inserted
    ]
    return outcomes, committed


@dataclass(frozen=True, slots=True)
class _Stored:
    sha256: bytes
    recovery_source: str
    payload: bytes


async def _existing(conn: AsyncConnection, event_ids: set[str]) -> dict[str, _Stored]:
    if not event_ids:
        return {}
    result = await conn.execute(
        select(
            stripe_events.c.event_id,
            stripe_events.c.payload_sha256,
            stripe_events.c.recovery_source,
            stripe_events.c.payload,
        ).where(stripe_events.c.event_id.in_(sorted(event_ids)))
    )
    return {row[0]: _Stored(bytes(row[1]), row[2], bytes(row[3])) for row in result}


def _same_content(original: _Stored, item: _Pending) -> bool:
    """Same bytes; or, when either copy came from events.list, the same JSON document.

    events.list renders an event anew (other whitespace and key order than the webhook, and a
    ``pending_webhooks`` count of the moment), so for recovered copies only a difference in
    content is a divergence.
    """
    if original.sha256 == item.event.payload_sha256:
        return True
    if "events_list" in (original.recovery_source, item.recovery_source):
        try:
            return _content(original.payload) == _content(item.event.payload)
        except ValueError:
            return False
    return False


def _content(payload: bytes) -> object:
    document = json.loads(payload)
    if isinstance(document, dict):
        document.pop("pending_webhooks", None)
    return document


# One statement text whatever the batch size (arrays, not a VALUES list per row): the driver
# parses it once, and PostgreSQL sees the same query every time. This halved the CPU per
# webhook compared with a multi-row VALUES insert (see bench/RESULTS.md). The arrays travel
# in binary (``%b``): psycopg's automatic choice for a list is the text format, which escaped
# every payload byte and every string element with a regular expression, ~30x the CPU of the
# binary dump (issue 12, bench/RESULTS.md). ``binary=True`` on execute is about results only.
INSERT_BATCH_SQL = """
INSERT INTO ingest.stripe_events (event_id, event_type, api_version, stripe_created_at, livemode,
    account, payload, payload_sha256, recovery_source, recovered_at, received_at,
    stripe_customer_id)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[], %b::boolean[],
    %b::text[], %b::bytea[], %b::bytea[], %b::text[], %b::timestamptz[], %b::timestamptz[],
    %b::text[])
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""


# Each column's encoder (services/ingest/pg_arrays.py), in INSERT_BATCH_SQL's order.
_ENCODERS: tuple[Callable[[list[Any]], Any], ...] = (
    pg_arrays.text_array,
    pg_arrays.text_array,
    pg_arrays.text_array,
    pg_arrays.timestamptz_array,
    pg_arrays.bool_array,
    pg_arrays.text_array,
    pg_arrays.bytea_array,
    pg_arrays.bytea_array,
    pg_arrays.text_array,
    pg_arrays.timestamptz_array,
    pg_arrays.timestamptz_array,
    pg_arrays.text_array,
)
pg_arrays.register(psycopg.adapters)


def _encoded(columns: tuple[list[Any], ...]) -> tuple[Any, ...]:
    """The columns as binary arrays (a list stays a list where its encoder declines)."""
    encoded = []
    for encode, column in zip(_ENCODERS, columns, strict=True):
        array = encode(column)
        encoded.append(column if array is None else array)
    return tuple(encoded)


def _columns(items: Iterable[_Pending]) -> tuple[list[Any], ...]:
    """The batch as one list per column, in INSERT_BATCH_SQL's order."""
    now = datetime.now(UTC)
    columns: tuple[list[Any], ...] = tuple([] for _ in range(12))
    for item in items:
        event = item.event
        for column, value in zip(
            columns,
            (
                event.event_id,
                event.event_type,
                event.api_version,
                event.stripe_created_at,
                event.livemode,
                event.account,
                event.payload,
                event.payload_sha256,
                item.recovery_source,
                item.recovered_at,
                now,
                event.stripe_customer_id,
            ),
            strict=True,
        ):
            column.append(value)
    return columns
