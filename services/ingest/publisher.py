"""Publishing archived events to JetStream, with the archive as the outbox.

Fresh events are handed over in memory right after their commit (the fast path). Anything
that path misses (NATS down, a crash between commit and publish, a full hand-over queue) is
still ``published_at IS NULL`` in the archive, and the sweeper publishes it later. JetStream
dedupes on ``Nats-Msg-Id`` = event id, so publishing twice is harmless; losing is impossible.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.nats_link import BrokerUnavailable, NatsLink, subject_for
from services.ingest.archive import CommittedEvent
from services.ingest.models import stripe_events

log = logging.getLogger(__name__)

PUBLISHED = Counter("ingest_published_total", "Events acknowledged by JetStream")
PUBLISH_FAILURES = Counter(
    "ingest_publish_failures_total",
    "Events whose publish failed or was deferred because NATS is away (the sweeper retries)",
)
BACKLOG = Gauge(
    "ingest_outbox_backlog",
    "Archived events not yet published (last sweep)",
    multiprocess_mode="mostrecent",  # with INGEST_PROCESSES > 1: the latest sweep of any copy
)


# The published_at stamp. ANY(array): one statement text for every batch size (see
# archive.INSERT_BATCH_SQL), the ids in binary (``%b``: no text escaping per element, issue 12).
#
# Committed asynchronously: ``set_config(..., true)`` turns ``synchronous_commit`` off for the
# statement's own transaction only (autocommit: it ends with the statement, so the pooled
# connection keeps the server's default for whoever uses it next), in an InitPlan evaluated
# once before the scan. The stamp is the one write of the ingest whose loss in a crash is
# harmless (a lost stamp is a missed stamp: the sweeper publishes the event again and
# JetStream dedupes it, as after a crash between publish and stamp), so it need not wait for
# its WAL flush, nor add a flush of its own to the group commits of webhooks, which must wait
# for theirs (issue 12, bench/RESULTS.md "Eighth pass: ingest"). Its WAL is flushed with the
# next of them, or by the WAL writer within a few hundred milliseconds.
STAMP_SQL = (
    "UPDATE ingest.stripe_events SET published_at = %s"
    " WHERE event_id = ANY(%b) AND published_at IS NULL"
    " AND (SELECT set_config('synchronous_commit', 'off', true)) = 'off'"
)


class OutboxPublisher:
    """Moves archived events to JetStream and stamps ``published_at`` once."""

    def __init__(
        self,
        engine: AsyncEngine,
        link: NatsLink,
        *,
        batch_size: int = 256,
        sweep_interval: float = 2.0,
        sweep_min_age: float = 5.0,
        max_pending: int = 50_000,
        stamp_interval: float = 0.2,
        stamp_idle: float = 0.01,
    ) -> None:
        self._engine = engine
        self._link = link
        self._batch_size = batch_size
        self._sweep_interval = sweep_interval
        self._sweep_min_age = sweep_min_age
        self._queue: asyncio.Queue[CommittedEvent] = asyncio.Queue(maxsize=max_pending)
        self._tasks: list[asyncio.Task[None]] = []
        # Fast-path events JetStream acknowledged, to be stamped published by the next UPDATE
        # (see _stamp_forever); ``_acked`` counts them, to tell a pause of the flow.
        self._stamp_interval = stamp_interval
        self._stamp_idle = stamp_idle
        self._acked = 0
        self._to_stamp: list[str] = []
        self._stamp_wanted = asyncio.Event()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._fast_path(), name="outbox-fast-path"),
            asyncio.create_task(self._sweep_forever(), name="outbox-sweeper"),
            asyncio.create_task(self._stamp_forever(), name="outbox-stamper"),
        ]

    def notify(self, events: Sequence[CommittedEvent]) -> None:
        """Hand over freshly committed events; never blocks (the sweeper is the safety net)."""
        for event in events:
            try:
                self._queue.put_nowait(event)
            except asyncio.QueueFull:
                return

    async def _fast_path(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            if not self._link.connected:
                PUBLISH_FAILURES.inc(len(batch))
                continue  # left for the sweeper once NATS is back
            done = await self._publish(batch)
            if done:
                self._to_stamp.extend(done)
                self._acked += len(done)
                self._stamp_wanted.set()

    async def _stamp_forever(self) -> None:
        """Stamp the fast path's published events, one UPDATE at a time, each taking
        everything acknowledged since the previous one.

        While events keep being acknowledged, at most one UPDATE starts per
        ``stamp_interval`` (issue 12: one UPDATE per publish batch was a transaction per group
        commit, for the ingest and for PostgreSQL; an UPDATE every 20 ms instead of 200 ms
        cost ~8 us more CPU per webhook, ingest and PostgreSQL together, in the mean of
        same-session runs on a loaded machine). As soon as the flow pauses (nothing
        acknowledged for ``stamp_idle``), the waiting events are stamped at once: before,
        every stamp waited the full 200 ms, so the last events of a burst stayed
        "unpublished" in the archive 200+ ms after JetStream had them (bench/RESULTS.md
        "Eighth pass: ingest"). After a quiet spell the first events are stamped at once; at a
        trickle (acknowledgements further apart than ``stamp_idle``) that is an UPDATE per
        publish batch, a cost that only matters at rates where the interval rule applies.

        The fast path goes on publishing meanwhile. A stamp that fails or never happens
        (crash) only makes the sweeper publish those events again after ``sweep_min_age``;
        JetStream dedupes them."""
        loop = asyncio.get_running_loop()
        last_start = -math.inf
        while True:
            await self._stamp_wanted.wait()
            deadline = last_start + self._stamp_interval
            while (left := deadline - loop.time()) > 0:
                acked = self._acked
                await asyncio.sleep(min(self._stamp_idle, left))
                if self._acked == acked:
                    break  # nothing acknowledged meanwhile: the flow paused
            last_start = loop.time()
            await self._stamp_now()

    async def _stamp_now(self) -> None:
        self._stamp_wanted.clear()
        ids, self._to_stamp = self._to_stamp, []
        if not ids:
            return
        try:
            await self._mark_published(ids)
        except Exception as exc:  # the sweeper republishes; JetStream dedupes
            log.warning("could not stamp published_at", extra={"error": repr(exc)})
            return
        PUBLISHED.inc(len(ids))

    async def publish_batch(self, batch: Sequence[CommittedEvent]) -> list[str]:
        """Publish concurrently, then stamp the acknowledged ones; returns their ids."""
        done = await self._publish(batch)
        if done:
            try:
                await self._mark_published(done)
            except Exception as exc:  # the sweeper republishes; JetStream dedupes
                log.warning("could not stamp published_at", extra={"error": repr(exc)})
                return []
            PUBLISHED.inc(len(done))
        return done

    async def _publish(self, batch: Sequence[CommittedEvent]) -> list[str]:
        """Publish concurrently; returns the ids JetStream acknowledged."""
        try:
            acked = await self._link.publish_many(
                [(subject_for(e.event_type), e.payload, e.event_id) for e in batch]
            )
        except BrokerUnavailable:
            acked = [False] * len(batch)
        done = [e.event_id for e, ok in zip(batch, acked, strict=True) if ok]
        failed = len(batch) - len(done)
        if failed:
            PUBLISH_FAILURES.inc(failed)
        return done

    async def _mark_published(self, event_ids: Sequence[str]) -> None:
        async with self._engine.connect() as plain:
            # One statement, so autocommit: one round trip instead of BEGIN, UPDATE, COMMIT
            # (issue 12, as the archive's INSERT); the UPDATE is atomic on its own.
            conn = await plain.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql(STAMP_SQL, (datetime.now(UTC), list(event_ids)))

    async def _sweep_forever(self) -> None:
        # The first sweep ignores age: whatever is unpublished at start-up was missed.
        min_age = 0.0
        while True:
            try:
                await self.sweep(min_age)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox sweep failed", extra={"error": repr(exc)})
            min_age = self._sweep_min_age
            await asyncio.sleep(self._sweep_interval)

    async def sweep(self, min_age_seconds: float = 0.0) -> int:
        """Publish every unpublished event older than ``min_age_seconds``; returns the count."""
        total = 0
        after_seq = 0
        while self._link.connected:
            async with self._engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(
                            stripe_events.c.archive_seq,
                            stripe_events.c.event_id,
                            stripe_events.c.event_type,
                            stripe_events.c.payload,
                        )
                        .where(stripe_events.c.published_at.is_(None))
                        .where(stripe_events.c.archive_seq > after_seq)
                        .where(
                            stripe_events.c.received_at
                            <= text("now() - make_interval(secs => :age)").bindparams(
                                age=min_age_seconds
                            )
                        )
                        .order_by(stripe_events.c.archive_seq)
                        .limit(self._batch_size)
                    )
                ).all()
            if not rows:
                break
            after_seq = rows[-1][0]
            batch = [CommittedEvent(r[1], r[2], bytes(r[3])) for r in rows]
            done = await self.publish_batch(batch)
            total += len(done)
            if len(done) < len(batch):
                break  # NATS trouble: try again next round
        await self._update_backlog()
        return total

    async def _update_backlog(self) -> None:
        async with self._engine.connect() as conn:
            backlog = (
                await conn.execute(
                    text("SELECT count(*) FROM ingest.stripe_events WHERE published_at IS NULL")
                )
            ).scalar_one()
        BACKLOG.set(backlog)

    async def republish(self, event_id: str) -> datetime | None:
        """Publish one archived event again; returns its ``published_at`` (None if absent)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(stripe_events.c.event_type, stripe_events.c.payload).where(
                        stripe_events.c.event_id == event_id
                    )
                )
            ).first()
        if row is None:
            return None
        await self._link.publish(subject_for(row[0]), bytes(row[1]), event_id)
        await self._mark_published([event_id])
        async with self._engine.connect() as conn:
            published_at: datetime | None = (
                await conn.execute(
                    select(stripe_events.c.published_at).where(stripe_events.c.event_id == event_id)
                )
            ).scalar_one()
        return published_at

    async def close(self) -> None:
        """Give the fast path a moment to drain, then stop; leftovers stay in the outbox."""
        for _ in range(100):
            if self._queue.empty() or not self._link.connected:
                break
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stamp_now()  # what was published in the last moments


__all__ = ["BrokerUnavailable", "OutboxPublisher"]
