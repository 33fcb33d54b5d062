"""The durable JetStream pull consumer ``ledger`` on ``STRIPE_EVENTS``.

Fetch up to ``batch_size`` messages, apply them in ONE transaction, ack each after the commit.
Acking after the commit means a crash between the two only causes a redelivery, which the
projection absorbs (idempotent inserts, latest-wins upserts); the same property lets several
ledger processes share the consumer.

A message must not poison its batch. Unreadable messages (not JSON, no id) are known before
the transaction and left out of it. If the batch transaction fails for another reason, the
messages are applied one by one, each in its own transaction, so only the culprit fails. A
failing message is nak'ed with a growing delay; once JetStream has delivered it
``dead_letter_after`` times it is written to ``ledger.dead_letters`` and terminated.

When PostgreSQL itself is away, nothing is the message's fault: the batch is nak'ed and the
consumer stops fetching until the database answers again, so an outage does not burn
deliveries (JetStream's own ``max_deliver`` is a backstop set above our bound).

The pull protocol itself (requests, statuses, acks) is services/ledger/jetstream_pull.py:
nats-py's fetch, read loop and acks were a quarter of this process's CPU (issue 12).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.nats_link import STREAM_NAME, SUBJECT_PREFIX, NatsLink
from services.ledger.db import DatabaseUnavailable, is_unavailable, raw_transaction
from services.ledger.dead_letters import record_dead_letter
from services.ledger.effects import Effects, project_event
from services.ledger.jetstream_pull import JetStreamPull, parse_ack_subject
from services.ledger.projection import apply_batch

log = logging.getLogger(__name__)

CONSUMED = Counter("ledger_consumed_messages_total", "Messages acknowledged by the ledger")
APPLIED = Counter("ledger_billing_events_applied_total", "New billing_events rows (consumer)")
DEAD = Counter("ledger_dead_letters_total", "Messages set aside as dead letters")
BATCH_FALLBACKS = Counter(
    "ledger_batch_fallbacks_total", "Batches that failed and were applied one message at a time"
)
BATCH_SIZE = Histogram(
    "ledger_consumer_batch_size",
    "Messages per consumer transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
)


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    name: str = "ledger"
    batch_size: int = 2000
    fetch_timeout: float = 0.5
    ack_wait: float = 30.0
    dead_letter_after: int = 5
    max_deliver: int = 10
    pause_on_db_down: float = 1.0
    idle_heartbeat: float = 0.0  # seconds; 0: none (the lingering requests are short)


@dataclass(slots=True)
class ProjectedMessages:
    """A fetched batch after projection: the messages with their rows, and the failures."""

    msgs: Sequence[Msg]
    good: list[tuple[Msg, Effects]] = field(default_factory=list)
    failed: list[tuple[Msg, str]] = field(default_factory=list)


class LedgerConsumer:
    """Runs the fetch-apply-ack loop in a background task until ``stop``."""

    def __init__(self, engine: AsyncEngine, link: NatsLink, options: ConsumerOptions) -> None:
        self._engine = engine
        self._link = link
        self.options = options
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.bound = False  # whether the consumer is bound to JetStream right now
        # Messages this instance applied and acked (the Prometheus counter sums the process's).
        self.acked = 0
        self._pull: JetStreamPull | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"ledger-consumer-{self.options.name}")

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the batch in hand (its acks included), then stop."""
        self._stopping.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def consumer_config(self) -> ConsumerConfig:
        o = self.options
        return ConsumerConfig(
            durable_name=o.name,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=SUBJECT_PREFIX + ">",
            ack_wait=o.ack_wait,
            max_deliver=o.max_deliver,
            max_ack_pending=max(1000, o.batch_size * 8),
        )

    async def _bind(self) -> JetStreamPull:
        """Create the durable consumer if it does not exist, then subscribe a pull inbox."""
        js = self._link.jetstream
        try:
            await js.consumer_info(STREAM_NAME, self.options.name)
        except NotFoundError:
            await js.add_consumer(STREAM_NAME, self.consumer_config())
        pull = JetStreamPull(
            self._link.client,
            STREAM_NAME,
            self.options.name,
            idle_heartbeat=self.options.idle_heartbeat,
        )
        await pull.start()
        return pull

    async def _run(self) -> None:
        delay = 0.2
        while not self._stopping.is_set():
            if not await self._link.wait_connected(1.0):
                continue
            try:
                pull = await self._bind()
                self._pull = pull
                self.bound = True
                delay = 0.2
                try:
                    await self._loop(pull)
                finally:
                    # An open inbox subscription would make the connection's drain wait.
                    with contextlib.suppress(Exception):
                        await pull.stop()
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable as exc:
                log.warning("database unavailable, pausing consumption", extra={"error": str(exc)})
                await self._wait_for_database()
            except Exception as exc:
                log.warning("consumer error, rebinding: %r", exc, extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                self.bound = False

    async def _loop(self, pull: JetStreamPull) -> None:
        """Fetch and project the next batch while the previous one commits.

        Projecting is CPU work in this process and committing is mostly waiting for
        PostgreSQL, so doing them one after the other left each side idle half of the time
        (issue 12); the projection runs in a worker thread so the write really proceeds.
        One batch is written at a time, its messages acked after its own commit; the order
        between batches does not matter to the projection.
        """
        writing: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                msgs = await pull.fetch(self.options.batch_size, self.options.fetch_timeout)
                if not msgs:
                    continue
                # In a thread, so the write of the previous batch goes on meanwhile: projected
                # in the event loop, a batch held the loop for its whole projection and the
                # write in flight got no further than the statement it had sent (issue 12).
                # The GIL is shared, but the loop only needs it for a moment per round trip.
                projected = await asyncio.to_thread(self.project, msgs)
                if writing is not None:
                    task, writing = writing, None
                    try:
                        await task
                    except DatabaseUnavailable:
                        await self._nak_all(msgs, 1.0)  # fetched meanwhile: redelivered later
                        raise
                writing = asyncio.create_task(self.apply(projected), name="ledger-consumer-write")
        finally:
            if writing is not None:
                try:  # the batch in hand is finished (acks included) before the loop ends
                    await writing
                except asyncio.CancelledError:
                    writing.cancel()
                    raise

    async def _wait_for_database(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(self.options.pause_on_db_down)
            try:
                async with self._engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                return
            except Exception as exc:
                if not is_unavailable(exc):
                    return

    async def handle(self, msgs: Sequence[Msg]) -> None:
        """Apply ``msgs`` (one transaction if possible), ack, and handle failures."""
        await self.apply(self.project(msgs))

    def project(self, msgs: Sequence[Msg]) -> ProjectedMessages:
        """Each message's rows, or why it cannot have any (CPU only, no I/O)."""
        projected = ProjectedMessages(msgs)
        for msg in msgs:
            try:
                projected.good.append((msg, project_event(msg.data)))
            except Exception as exc:
                projected.failed.append((msg, f"{type(exc).__name__}: {exc}"))
        return projected

    async def apply(self, projected: ProjectedMessages) -> None:
        """Write the projected batch in one transaction, ack, and handle failures."""
        msgs, good, failed = projected.msgs, projected.good, projected.failed
        BATCH_SIZE.observe(len(msgs))
        if good:
            try:
                async with raw_transaction(self._engine) as conn:
                    result = await apply_batch(conn, [e for _, e in good])
                APPLIED.inc(result.applied)
            except DatabaseUnavailable:
                await self._nak_all(msgs, 1.0)
                raise
            except Exception as exc:
                BATCH_FALLBACKS.inc()
                log.warning(
                    "batch failed, applying one by one",
                    extra={"size": len(good), "error": repr(exc)},
                )
                failed.extend(await self._one_by_one(good, msgs))
            else:
                await self._acker().ack([msg for msg, _ in good])
                CONSUMED.inc(len(good))
                self.acked += len(good)
        for msg, error in failed:
            await self._failed(msg, error)

    async def _one_by_one(
        self, good: list[tuple[Msg, Effects]], batch: Sequence[Msg]
    ) -> list[tuple[Msg, str]]:
        failed: list[tuple[Msg, str]] = []
        for msg, effects in good:
            try:
                async with raw_transaction(self._engine) as conn:
                    result = await apply_batch(conn, [effects])
            except DatabaseUnavailable:
                await self._nak_all(batch, 1.0)
                raise
            except Exception as exc:
                failed.append((msg, f"{type(exc).__name__}: {exc}"))
                continue
            APPLIED.inc(result.applied)
            await self._acker().ack((msg,))
            CONSUMED.inc()
            self.acked += 1
        return failed

    async def _failed(self, msg: Msg, error: str) -> None:
        """Nak for a later retry, or set aside once the delivery bound is reached."""
        delivery = parse_ack_subject(msg.reply)
        deliveries = delivery.num_delivered
        pull = self._acker()
        if deliveries < self.options.dead_letter_after:
            await pull.nak(msg, delay=min(0.5 * 2 ** (deliveries - 1), 30.0))
            return
        try:
            async with raw_transaction(self._engine) as conn:
                await record_dead_letter(
                    conn,
                    stream_seq=delivery.stream_seq,
                    subject=msg.subject,
                    stripe_event_id=(msg.headers or {}).get("Nats-Msg-Id"),
                    payload=msg.data,
                    error=error,
                    deliveries=deliveries,
                )
        except DatabaseUnavailable:
            await pull.nak(msg, delay=1.0)
            raise
        DEAD.inc()
        log.error(
            "message dead-lettered",
            extra={"stream_seq": delivery.stream_seq, "error": error[:500]},
        )
        await pull.term(msg)

    def _acker(self) -> JetStreamPull:
        """The binding that fetched the messages in hand (acks go out on its connection)."""
        if self._pull is None:
            raise RuntimeError("the consumer is not bound: nothing was fetched to acknowledge")
        return self._pull

    async def _nak_all(self, msgs: Sequence[Msg], delay: float) -> None:
        """Best effort: a nak that does not get out only means the ack_wait redelivery."""
        pull = self._pull
        if pull is None:
            return
        for msg in msgs:
            with contextlib.suppress(Exception):
                await pull.nak(msg, delay=delay)
