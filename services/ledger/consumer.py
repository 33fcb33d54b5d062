"""The durable JetStream pull consumer ``ledger`` on ``STRIPE_EVENTS``.

Fetch up to ``batch_size`` messages, apply them in ONE transaction, ack each after the commit.
Acking after the commit means a crash between the two only causes a redelivery, which the
projection absorbs (idempotent inserts, latest-wins upserts); the same property lets several
ledger processes share the consumer.

A message must not poison its batch. Unreadable messages (not JSON, no id) are known before
the transaction and left out of it. If the batch transaction fails for another reason, the
messages are applied in halves, each in its own transaction, halving again only what fails,
down to single messages, so only the culprit fails. A
failing message is nak'ed with a growing delay; once JetStream has delivered it
``dead_letter_after`` times it is written to ``ledger.dead_letters`` and terminated.

When PostgreSQL itself is away, nothing is the message's fault: the batch is nak'ed and the
consumer stops fetching until the database answers again, so an outage does not burn
deliveries (JetStream's own ``max_deliver`` is a backstop set above our bound).

The pull protocol itself (requests, statuses, acks) is services/ledger/jetstream_pull.py:
nats-py's fetch, read loop and acks were a quarter of this process's CPU (issue 12). The
projection (parse, classify, merge, COPY-encode) runs off the event loop: in a thread by
default, or in one worker process (``LEDGER_CONSUMER_WORKERS=1``; services/ledger/settings.py
says when each wins), so the event loop only moves NATS messages and PostgreSQL round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Histogram
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.nats_link import STREAM_NAME, SUBJECT_PREFIX, NatsLink
from services.ledger.culprits import apply_in_halves
from services.ledger.db import DatabaseUnavailable, is_unavailable, raw_transaction
from services.ledger.dead_letters import record_dead_letter
from services.ledger.effects import Effects, project_event
from services.ledger.jetstream_pull import Delivery, JetStreamPull, parse_ack_subject
from services.ledger.projection import (
    BatchResult,
    StagedBatch,
    apply_batch,
    apply_staged,
    merge_effects,
    stage_merged,
)
from services.ledger.settings import LedgerSettings
from services.ledger.worker_pool import projection_pool

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
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
)
#: Where a batch's wall time goes (issue 12): ``fetch`` the pull, ``project`` the projection
#: (off the event loop), ``write`` the transaction and the acks, ``write_loop_cpu`` the event
#: loop thread's own CPU during the write (the rest of ``write`` is waiting: for PostgreSQL,
#: or for the GIL), ``wait_write`` the loop waiting for the previous batch's write after
#: projecting the next one (the write, not the projection, is the bound when it grows).
PHASE_SECONDS = Histogram(
    "ledger_consumer_phase_seconds",
    "Seconds per consumer batch, by phase",
    ["phase"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
#: How late the event loop wakes for a timer: the time a ready callback (a PostgreSQL
#: answer) waits for the loop thread, i.e. for the GIL or the loop's own work.
LOOP_LAG = Histogram(
    "ledger_event_loop_lag_seconds",
    "Delay of a 100 ms timer on the ledger's event loop beyond its due time",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
)


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    name: str = "ledger"
    batch_size: int = 16000  # at most per fetch and transaction
    fetch_timeout: float = 0.5
    ack_wait: float = 30.0
    dead_letter_after: int = 5
    max_deliver: int = 10
    pause_on_db_down: float = 1.0
    idle_heartbeat: float = 0.0  # seconds; 0: none (the lingering requests are short)
    #: 0: project in a thread of this process (the default); 1: in a worker process (see
    #: ``_loop`` and services/ledger/worker_pool.py)
    workers: int = 0
    #: The first fetch after a short one asks for this many and each full fetch doubles it,
    #: up to ``batch_size`` (see ``_loop``); 0: every fetch asks for ``batch_size``.
    ramp_from: int = 2000
    #: At most this many bytes of messages per pull request (services/ledger/jetstream_pull.py:
    #: a batch of large events must not exceed what the server lets a client leave unread).
    fetch_max_bytes: int = 32 << 20

    @classmethod
    def from_settings(cls, settings: LedgerSettings) -> ConsumerOptions:
        return cls(
            name=settings.consumer_name,
            batch_size=settings.batch_size,
            fetch_timeout=settings.fetch_timeout,
            ack_wait=settings.ack_wait,
            dead_letter_after=settings.dead_letter_after,
            max_deliver=settings.server_max_deliver,
            workers=settings.consumer_workers,
            ramp_from=settings.batch_ramp_from,
            fetch_max_bytes=settings.fetch_max_bytes,
        )


#: The projection's outcome for a list of payloads: the good ones merged and encoded for the
#: writer (None if there is none), (index, error) of each payload that has no rows, and the
#: error of merging / encoding the batch as a whole (None if it worked).
StagedPayloads = tuple[StagedBatch | None, list[tuple[int, str]], str | None]


def stage_payloads(payloads: Sequence[bytes]) -> StagedPayloads:
    """Project, merge and encode a batch of payloads (CPU only: in the thread or the worker).

    Any error of one payload is that message's failure (nak, later a dead letter), as it has
    always been for the live consumer: a bug must not stop the stream, and the dead letter
    keeps the payload and the error for the operator.
    """
    effects: list[Effects] = []
    failed: list[tuple[int, str]] = []
    for index, payload in enumerate(payloads):
        try:
            effects.append(project_event(payload))
        except Exception as exc:
            failed.append((index, f"{type(exc).__name__}: {exc}"))
    if not effects:
        return None, failed, None
    try:
        return stage_merged(merge_effects(effects)), failed, None
    except Exception as exc:  # the writer applies the batch in halves: only the culprit fails
        return None, failed, f"{type(exc).__name__}: {exc}"


@dataclass(slots=True)
class ProjectedMessages:
    """A fetched batch after projection: its readable messages with their rows staged for
    the writer, and the failures."""

    msgs: Sequence[Delivery]
    good: list[Delivery] = field(default_factory=list)
    staged: StagedBatch | None = None
    failed: list[tuple[Delivery, str]] = field(default_factory=list)
    stage_error: str | None = None  # merging / encoding the good ones together failed

    @classmethod
    def of(cls, msgs: Sequence[Delivery], outcome: StagedPayloads) -> ProjectedMessages:
        staged, failures, stage_error = outcome
        failed = [(msgs[index], error) for index, error in failures]
        bad = {index for index, _ in failures}
        good = [msg for index, msg in enumerate(msgs) if index not in bad]
        return cls(msgs, good, staged, failed, stage_error)


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
        self._executor: ProcessPoolExecutor | None = None
        self._lag_probe: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.options.workers > 0:
            self._executor = projection_pool(1)
        self._task = asyncio.create_task(self._run(), name=f"ledger-consumer-{self.options.name}")
        self._lag_probe = asyncio.create_task(self._probe_loop_lag(), name="ledger-loop-lag")

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the batch in hand (its acks included), then stop."""
        self._stopping.set()
        if self._lag_probe is not None:
            self._lag_probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_probe
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None

    async def _probe_loop_lag(self) -> None:
        """Observe how late a 100 ms timer fires (``ledger_event_loop_lag_seconds``); ten
        wake-ups a second, so the probe itself stays off the books."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.1
            await asyncio.sleep(0.1)
            LOOP_LAG.observe(max(loop.time() - due, 0.0))

    def consumer_config(self) -> ConsumerConfig:
        return consumer_config(self.options)

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
            max_bytes=self.options.fetch_max_bytes,
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

        Projecting is CPU work and committing is mostly waiting for PostgreSQL, so doing them
        one after the other left each side idle half of the time (issue 12). The projection
        runs in a thread, or in a worker process (``workers``): in the thread it holds the GIL
        that the event loop needs for every round trip of the write in flight, in the process
        it costs the hand-over. One batch is
        written at a time, its messages acked after its own commit; the order between
        batches does not matter to the projection. Batch sizes ramp up while there is a
        backlog (``ramp_from``, doubling up to ``batch_size``): the first rows wait only for a
        small batch, and a backlog is written in big ones, whose fixed cost per transaction
        (round trips, the query_* flush, the commit) is shared by more events.
        """
        writing: asyncio.Task[None] | None = None
        size = first = min(
            self.options.ramp_from or self.options.batch_size, self.options.batch_size
        )
        try:
            while not self._stopping.is_set():
                started = time.perf_counter()
                msgs = await pull.fetch(size, self.options.fetch_timeout)
                size = next_batch_size(
                    size, len(msgs), first, self.options.batch_size, cut=pull.cut_by_bytes
                )
                if not msgs:
                    continue
                fetched = time.perf_counter()
                PHASE_SECONDS.labels("fetch").observe(fetched - started)
                projected = await self._project(msgs)
                projected_at = time.perf_counter()
                PHASE_SECONDS.labels("project").observe(projected_at - fetched)
                if writing is not None:
                    task, writing = writing, None
                    try:
                        await task
                    except DatabaseUnavailable:
                        await self._nak_all(msgs, 1.0)  # fetched meanwhile: redelivered later
                        raise
                    PHASE_SECONDS.labels("wait_write").observe(time.perf_counter() - projected_at)
                writing = asyncio.create_task(self.apply(projected), name="ledger-consumer-write")
        finally:
            if writing is not None:
                try:  # the batch in hand is finished (acks included) before the loop ends
                    await writing
                except asyncio.CancelledError:
                    writing.cancel()
                    raise

    async def _project(self, msgs: Sequence[Delivery]) -> ProjectedMessages:
        """:meth:`project` off the event loop: in the worker process, else in a thread."""
        payloads = [msg.data for msg in msgs]
        if self._executor is not None:
            loop = asyncio.get_running_loop()
            try:
                outcome = await loop.run_in_executor(self._executor, stage_payloads, payloads)
            except BrokenProcessPool:
                # The worker died (killed, out of memory): this batch is projected here, and
                # the next one gets a new worker.
                log.warning("projection worker lost, starting a new one")
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = projection_pool(1)
            else:
                return ProjectedMessages.of(msgs, outcome)
        return ProjectedMessages.of(msgs, await asyncio.to_thread(stage_payloads, payloads))

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

    async def handle(self, msgs: Sequence[Delivery]) -> None:
        """Apply ``msgs`` (one transaction if possible), ack, and handle failures."""
        await self.apply(self.project(msgs))

    def project(self, msgs: Sequence[Delivery]) -> ProjectedMessages:
        """Each message's rows staged for the writer, or why it cannot have any (CPU only)."""
        return ProjectedMessages.of(msgs, stage_payloads([msg.data for msg in msgs]))

    async def apply(self, projected: ProjectedMessages) -> None:
        """Write the projected batch in one transaction, ack, and handle failures."""
        msgs, good, failed = projected.msgs, projected.good, projected.failed
        BATCH_SIZE.observe(len(msgs))
        started, started_cpu = time.perf_counter(), time.thread_time()
        error = projected.stage_error
        if good and error is None and projected.staged is not None:
            try:
                async with raw_transaction(self._engine) as conn:
                    result = await apply_staged(conn, projected.staged, len(good))
                APPLIED.inc(result.applied)
            except DatabaseUnavailable:
                await self._nak_all(msgs, 1.0)
                raise
            except Exception as exc:
                error = repr(exc)
            else:
                await self._acker().ack(good)
                CONSUMED.inc(len(good))
                self.acked += len(good)
        if good and error is not None:
            BATCH_FALLBACKS.inc()
            log.warning(
                "batch failed, applying it in halves", extra={"size": len(good), "error": error}
            )
            failed.extend(await self._in_halves(good, msgs))
        for msg, reason in failed:
            await self._failed(msg, reason)
        PHASE_SECONDS.labels("write").observe(time.perf_counter() - started)
        PHASE_SECONDS.labels("write_loop_cpu").observe(time.thread_time() - started_cpu)

    async def _in_halves(
        self, good: list[Delivery], batch: Sequence[Delivery]
    ) -> list[tuple[Delivery, str]]:
        """Apply a batch whose transaction failed in halves (services/ledger/culprits.py),
        each part acked after its own commit; returns the messages that fail alone."""

        async def apply(part: Sequence[Delivery]) -> BatchResult:
            try:
                async with raw_transaction(self._engine) as conn:
                    return await apply_batch(conn, [msg.data for msg in part])
            except DatabaseUnavailable:
                await self._nak_all(batch, 1.0)
                raise

        async def applied(part: Sequence[Delivery], result: BatchResult) -> None:
            APPLIED.inc(result.applied)
            await self._acker().ack(part)
            CONSUMED.inc(len(part))
            self.acked += len(part)

        return [
            (msg, f"{type(exc).__name__}: {exc}")
            for msg, exc in await apply_in_halves(good, apply, applied)
        ]

    async def _failed(self, msg: Delivery, error: str) -> None:
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

    async def _nak_all(self, msgs: Sequence[Delivery], delay: float) -> None:
        """Best effort: a nak that does not get out only means the ack_wait redelivery."""
        pull = self._pull
        if pull is None:
            return
        for msg in msgs:
            with contextlib.suppress(Exception):
                await pull.nak(msg, delay=delay)


def consumer_config(options: ConsumerOptions) -> ConsumerConfig:
    """The durable consumer the ledger creates when it is not there (an existing one is used
    as it is)."""
    return ConsumerConfig(
        durable_name=options.name,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        filter_subject=SUBJECT_PREFIX + ">",
        ack_wait=options.ack_wait,
        max_deliver=options.max_deliver,
        max_ack_pending=max(1000, options.batch_size * 8),
    )


def next_batch_size(asked: int, got: int, first: int, most: int, *, cut: bool = False) -> int:
    """How many messages to fetch next, after ``got`` of ``asked`` came (``cut``: the fetch
    ended at its byte bound, so more are waiting, and asking for more would bring no more).

    A backlog is written in big batches (a batch's fixed costs - round trips, the refresh
    statements, the staging tables' truncation at commit - shrink per event), but the write
    must not idle while a first big batch is fetched and projected (~2 s of a 20,000-event
    catch-up on a loaded machine, issue 12): batches start at ``first`` and double while
    fetches come back full, up to ``most``; a short fetch (no backlog) starts over.
    """
    if cut:
        return asked
    return min(asked * 2, most) if got >= asked else first
