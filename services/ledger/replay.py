"""Replay the ingest archive into the ledger (or into a scratch schema, for VerifyLedger).

The archive arrives over ``IngestService.StreamArchive`` in ``(stripe_created_at, event_id)``
order and is applied in batches, each in its own transaction; the projection is idempotent,
so a replay over a full ledger applies nothing and an interrupted replay can simply be run
again. Reading the stream, projecting (CPU: JSON, resolvers, classifier) and writing
(PostgreSQL) overlap: the reader fills a bounded queue, projection runs in a process pool
when one is given (one batch in flight per worker), and the writer commits the previous
batch meanwhile.

Bulk replays into the live ``ledger`` schema take these shortcuts, all re-runnable:

* ``synchronous_commit = off`` for the replay's own transactions (``SET LOCAL``): a crash can
  lose the last few hundred milliseconds of committed batches, which the next replay (or the
  consumer's redelivery) applies again; nothing else is affected.
* Into an empty ledger, the query_* maintenance triggers are deferred (migration 0006) and
  the query_* rebuild (``ledger.query_support_rebuild()``'s parts, on two connections) runs
  at the end, after an ANALYZE of the freshly loaded tables. The marker row
  ``ledger.query_support_deferred`` is committed before the first batch and removed with the
  rebuild, so a replay that dies half-way is finished by the
  next one (which sees the marker and defers and rebuilds again). Such a replay also leaves
  the derived columns to one ``refresh_all_derived`` in that final transaction.
* Into an empty ledger (or VerifyLedger's new scratch schema), billing rows are copied
  straight into their table (``apply_staged(fresh=True)``); should another writer have
  applied one of the events meanwhile, the unique key refuses the batch and the rest of the
  replay goes through ``ON CONFLICT`` as usual (issue 12).
* Into an empty ledger (or scratch schema) the replay is a bulk load: the secondary indexes
  of the tables it writes are dropped before the first batch and built once at the end
  (:mod:`services.ledger.bulk_indexes`, crash-safe: recorded in the dropping transaction and
  restored by the end of the replay, a failed replay, the next replay or the service's
  start), and the derived columns are refreshed once at the end for the scratch schema too.

Why ``synchronous_commit = off`` is safe here: it only lets a crash lose the *last* commits
of this replay's own batches (never reorder them, never corrupt anything: WAL order is kept).
The ledger is a pure function of the archive and the projection is idempotent, so the lost
tail is applied again by the next replay, and the consumer's acks never depend on these
commits (a replay acks nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Collection,
    Coroutine,
    Iterator,
    Sequence,
)
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter
from psycopg import sql
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.timeconv import to_timestamp
from services.ledger.bulk_indexes import (
    READ_BY_REFRESH,
    REFRESHED,
    drop_indexes,
    restore_indexes,
)
from services.ledger.culprits import apply_in_halves
from services.ledger.db import DatabaseUnavailable, raw_autocommit, raw_transaction
from services.ledger.dead_letters import record_replay_dead_letter
from services.ledger.effects import BadEvent, Effects, project_event
from services.ledger.projection import (
    BatchResult,
    StagedBatch,
    apply_batch,
    apply_staged,
    merge_effects,
    refresh_all_derived,
    stage_merged,
)
from services.ledger.tables import check_schema

log = logging.getLogger(__name__)

REPLAYED = Counter("ledger_replayed_events_total", "Archived events examined by replays")
UNREADABLE = Counter(
    "ledger_replay_unreadable_total", "Archived events a replay could not read (BadEvent)"
)
REPLAY_FAILED = Counter(
    "ledger_replay_failed_total", "Archived events a replay could not apply (dead-lettered)"
)

#: (event id, payload) of one archived event.
Archived = tuple[str, bytes]

#: The end of a bulk replay by step: name -> seconds.
Steps = dict[str, float]


@contextlib.contextmanager
def _timed(steps: Steps, name: str) -> Iterator[None]:
    """Record how long the block took under ``name``: the end of a bulk replay is a fifth of
    it at 1M events, and which of its steps is long is what an operator (and a bench) asks."""
    began = time.perf_counter()
    try:
        yield
    finally:
        steps[name] = round(time.perf_counter() - began, 3)


@dataclass(slots=True)
class ReplayReport:
    examined: int = 0
    applied: int = 0
    unsupported: int = 0
    #: events whose payload is not a readable Stripe event (``BadEvent``), logged one by one
    unreadable: int = 0
    #: events that failed otherwise (projection or database error): dead-lettered by a replay
    #: into the live ledger, like the consumer does; only counted by VerifyLedger
    failed: int = 0
    seconds: float = 0.0
    #: of ``seconds``, the end after the last batch (a bulk replay's index builds, derived
    #: refresh and query_* rebuild): where a replay's time goes, for operators and benches
    finish_seconds: float = 0.0
    #: the end's steps and their seconds (those on the second connection overlap the others)
    finish_steps: dict[str, float] = field(default_factory=dict)
    #: (stripe_created_at, event_id) of the last event streamed: the archive's horizon.
    horizon: tuple[datetime, str] | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)  # (event id, error), sample


@dataclass(slots=True)
class ProjectedBatch:
    """One batch projected (in a worker process): merged rows encoded for the writer, plus
    what could not be used."""

    examined: int
    staged: StagedBatch
    unreadable: list[tuple[str, str]]  # (event id, reason)
    failed: list[tuple[str, bytes, str]]  # (event id, payload, error)


def project_merged(events: Sequence[Archived]) -> ProjectedBatch:
    """Project and merge a batch (runs in a worker process).

    Merging and encoding the rows for COPY in the worker keep the writer's share small: what
    crosses the process boundary is a few byte strings per batch instead of an object per
    event, and the single writer only moves bytes (issue 12). Only the
    known bad-payload error (``BadEvent``) makes an event "unreadable"; any other error is a
    failure the caller dead-letters, as the live consumer does.
    """
    readable: list[Effects] = []
    unreadable: list[tuple[str, str]] = []
    failed: list[tuple[str, bytes, str]] = []
    for event_id, payload in events:
        try:
            readable.append(project_event(payload))
        except BadEvent as exc:
            unreadable.append((event_id, str(exc)))
        except Exception as exc:  # a bug, not bad input: dead-lettered with its error
            failed.append((event_id, payload, f"{type(exc).__name__}: {exc}"))
    return ProjectedBatch(len(events), stage_merged(merge_effects(readable)), unreadable, failed)


async def archive_batches(
    stub: ingest_pb2_grpc.IngestServiceStub,
    *,
    since: datetime | None,
    until: datetime | None,
    batch_size: int,
) -> AsyncIterator[tuple[list[Archived], tuple[datetime, str] | None]]:
    """The archive as batches of (event id, payload), each with the (created, id) of its last
    event."""
    request = ingest_pb2.StreamArchiveRequest(
        since=to_timestamp(since), until=to_timestamp(until), payload_only=True
    )
    call = stub.StreamArchiveBatches(request)
    batch: list[Archived] = []
    last: ingest_pb2.ArchivedEvent | None = None
    async for chunk in call:  # type: ignore[attr-defined]
        for event in chunk.events:  # a message holds ~1 MB of events: cut at batch_size
            batch.append((event.event_id, event.payload))
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


#: Tables whose statistics the rebuild's plans depend on (they grew from nothing); the end
#: also vacuums them (:func:`_vacuum`).
_ANALYZED = (
    "billing_events",
    "accounts",
    "payment_methods",
    "tax_ids",
    "subscriptions",
    "subscription_schedules",
    "payments",
    "invoice_payments",
    "refunds",
    "credit_notes",
    "charges",
)


async def _start_deferral(engine: AsyncEngine) -> tuple[bool, bool]:
    """Whether this replay defers the query_* maintenance (and so must rebuild at the end),
    and whether the ledger is empty (its billing rows can be copied in directly; its
    secondary indexes are dropped here, in the transaction that records them)."""
    async with raw_transaction(engine) as conn, conn.cursor() as cur:
        await cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("ledger:ledger",))
        # A bulk replay that died left its indexes dropped: this one starts from a whole ledger.
        await restore_indexes(cur, "ledger")
        await cur.execute("SELECT EXISTS (SELECT 1 FROM ledger.query_support_deferred)")
        row = await cur.fetchone()
        empty = await _schema_is_empty(cur, "ledger")
        defer = bool(row and row[0]) or empty
        if defer:
            await cur.execute(
                "INSERT INTO ledger.query_support_deferred DEFAULT VALUES ON CONFLICT DO NOTHING"
            )
        if empty:
            await drop_indexes(cur, "ledger")
    return defer, empty


async def _start_scratch(engine: AsyncEngine, schema: str) -> bool:
    """Whether ``schema`` (VerifyLedger's) is empty; if so, its secondary indexes are dropped
    (built again by :func:`_finish_scratch`)."""
    async with raw_transaction(engine) as conn, conn.cursor() as cur:
        await cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ledger:{schema}",))
        empty = await _schema_is_empty(cur, schema)
        if empty:
            await drop_indexes(cur, schema)
    return empty


async def _restore(engine: AsyncEngine, schema: str, tables: Collection[str] | None = None) -> None:
    """Build the indexes a bulk replay dropped (of ``tables`` only, if given), in their own
    transaction: an index built in a transaction is not usable by that transaction on a table
    with HOT-updated rows (the read models), and what follows needs them."""
    async with raw_transaction(engine) as conn, conn.cursor() as cur:
        await cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ledger:{schema}",))
        await restore_indexes(cur, schema, tables=tables)


async def _finish_scratch(engine: AsyncEngine, schema: str) -> None:
    """End of a bulk replay into a scratch schema: the indexes the refresh reads, the derived
    columns once, then the indexes of the tables it rewrote (see :func:`_finish_deferral`)."""
    await _restore(engine, schema, READ_BY_REFRESH)
    async with raw_transaction(engine) as conn, conn.cursor() as cur:
        await cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ledger:{schema}",))
        await refresh_all_derived(cur, schema)
    await _restore(engine, schema)


async def _schema_is_empty(cur: psycopg.AsyncCursor[Any], schema: str) -> bool:
    """No row yet in ``schema``'s tables that a replay fills (keyed by event or object)."""
    s = check_schema(schema)
    await cur.execute(
        f"SELECT NOT (EXISTS (SELECT 1 FROM {s}.billing_events)"  # noqa: S608 - checked name
        f" OR EXISTS (SELECT 1 FROM {s}.unsupported_events)"
        f" OR EXISTS (SELECT 1 FROM {s}.accounts)"
        f" OR EXISTS (SELECT 1 FROM {s}.subscriptions)"
        f" OR EXISTS (SELECT 1 FROM {s}.payments))"
    )
    row = await cur.fetchone()
    return bool(row and row[0])


#: The table the derived refresh never reads (it is the ledger itself, not a read model):
#: its index builds and its ANALYZE, the largest of the end's steps, can run beside the
#: refresh. Only the query_* rebuild needs them, and it comes after both.
_BESIDE_REFRESH = "billing_events"


async def _finish_deferral(engine: AsyncEngine, steps: Steps) -> None:
    """Build the dropped indexes, refresh every derived column, rebuild the query_* tables
    from the ledger and clear the marker (the batches of a deferring replay skipped all of it).

    In four committed steps; the marker goes with the last one, so a replay that dies in
    between leaves all of it to the next replay (which defers, refreshes and rebuilds too):

    1. VACUUM, then the indexes of the tables the refresh looks rows up in;
    2. ANALYZE of those tables, and the refresh: it rewrites most rows of the tables it
       refreshes (payments above all), which then have no secondary index to maintain;
    3. VACUUM of the refreshed tables (their rewritten rows' dead versions), their indexes
       and their ANALYZE (committed, so that the rebuild's second connection plans with the
       new statistics too);
    4. the query_* rebuild and the marker.

    Every VACUUM runs while the table has no secondary index (a pass over its heap alone),
    see :func:`_vacuum` for why the end vacuums at all.

    Meanwhile, on a second connection, billing_events gets its VACUUM, indexes and ANALYZE
    (:func:`_ready_beside_refresh`): ~40% of the end's work, which otherwise ran alone on one
    core after the projection workers had finished (issue 12, sixth pass). The rebuild, too,
    runs half of its parts on a second connection (:func:`_rebuild_query_support`).
    """
    # The tables read by the refresh (but billing_events, beside), and those it rewrites.
    read = [t for t in _ANALYZED if t not in REFRESHED and t != _BESIDE_REFRESH]
    refreshed = [t for t in _ANALYZED if t in REFRESHED]
    async with _beside(_ready_beside_refresh(engine, steps), "replay-end-billing"):
        await _vacuum(engine, read, steps, "vacuum before their indexes")
        with _timed(steps, "indexes read by the refresh"):
            await _restore(engine, "ledger", [t for t in READ_BY_REFRESH if t != _BESIDE_REFRESH])
        async with raw_transaction(engine) as conn, conn.cursor() as cur:
            await cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("ledger:ledger",))
            with _timed(steps, "analyze before the refresh"):
                for table in read:
                    await cur.execute(f"ANALYZE ledger.{table}")
            # The rebuild below recomputes the query_* tables: no trigger work for the refresh.
            await _replay_session(conn, defer=True)
            with _timed(steps, "derived refresh"):
                await refresh_all_derived(cur)
    # Only once billing_events' transaction beside has ended: its snapshot, older than the
    # refresh, would keep the refreshed rows' dead versions from being removed.
    await _vacuum(engine, refreshed, steps, "vacuum of the refreshed tables")
    with _timed(steps, "indexes of the refreshed tables"):
        await _restore(engine, "ledger", REFRESHED)
    await _restore(engine, "ledger")  # nothing left, unless another replay dropped some
    async with raw_transaction(engine) as conn, conn.cursor() as cur:
        await cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("ledger:ledger",))
        with _timed(steps, "analyze of the refreshed tables"):
            for table in refreshed:
                await cur.execute(f"ANALYZE ledger.{table}")
    async with raw_transaction(engine) as conn, conn.cursor() as cur:
        await cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("ledger:ledger",))
        await _replay_session(conn, defer=True)
        await _rebuild_query_support(engine, cur, steps)
        await cur.execute("DELETE FROM ledger.query_support_deferred")


#: The parts of the query_* rebuild (migration 0025) run on a second connection while this
#: one runs the others: the MRR steps and the event counts (~half of the rebuild at 1M
#: events: 2.1 of 4.4 s on the kept bench ledger) read only billing_events and subscriptions.
_REBUILT_BESIDE = frozenset({"mrr", "events"})


async def _rebuild_query_support(
    engine: AsyncEngine, cur: psycopg.AsyncCursor[Any], steps: Steps
) -> None:
    """``ledger.query_support_rebuild()``, its parts on two connections.

    Each part refills only its own query_* tables from the source tables, so the parts give
    the same rows in two transactions as in one. The second connection's transaction commits
    first (awaited here): should either fail, the caller's transaction - the one that removes
    the deferral marker - rolls back, and the next replay rebuilds everything again. It takes
    no advisory lock: a writer that waits for the caller's lock touches these tables only
    after it, and the TRUNCATEs keep readers on the old rows until each commit.
    """
    await cur.execute("SELECT ledger.query_support_parts()")
    row = await cur.fetchone()
    parts: list[str] = list(row[0]) if row else []
    beside = [p for p in parts if p in _REBUILT_BESIDE]
    async with _beside(_rebuild_parts(engine, beside, steps), "replay-end-rebuild"):
        await _run_parts(cur, [p for p in parts if p not in _REBUILT_BESIDE], steps)


async def _rebuild_parts(engine: AsyncEngine, parts: Sequence[str], steps: Steps) -> None:
    """Rebuild ``parts`` of the query_* tables in a transaction of their own."""
    async with raw_transaction(engine) as conn, conn.cursor() as cur:
        await _replay_session(conn, defer=True)
        await _run_parts(cur, parts, steps)


async def _run_parts(cur: psycopg.AsyncCursor[Any], parts: Sequence[str], steps: Steps) -> None:
    for part in parts:
        with _timed(steps, f"rebuild {part}"):
            await cur.execute("SELECT ledger.query_support_rebuild_part(%s)", (part,))


@contextlib.asynccontextmanager
async def _beside(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run ``work`` (a step on a connection of its own) while the block runs; leaving the
    block waits for it and raises its error. A block that fails also waits for it before
    raising (its error, not ``work``'s): the caller's clean-up - restoring indexes, above
    all - must never run while ``work`` is still building some."""
    task = asyncio.create_task(work, name=name)
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            await task
        raise
    await task


async def _ready_beside_refresh(engine: AsyncEngine, steps: Steps) -> None:
    """billing_events' VACUUM (:func:`_vacuum`), then its dropped indexes and its ANALYZE in
    their own transaction.

    Without the writers' advisory lock, or it would wait for each step of the refresh that
    it is meant to run beside. Nothing else needs the lock here: the index builds hold
    billing_events' SHARE lock, so a writer that arrives meanwhile (the consumer) waits for
    them to commit, exactly as it waits for the same builds in the locked transaction, and
    this transaction waits for nothing the lock holders wait for.
    """
    await _vacuum(engine, [_BESIDE_REFRESH], steps, f"{_BESIDE_REFRESH} vacuum (beside)")
    async with raw_transaction(engine) as conn, conn.cursor() as cur:
        with _timed(steps, f"{_BESIDE_REFRESH} indexes (beside)"):
            await restore_indexes(cur, "ledger", tables=[_BESIDE_REFRESH])
        with _timed(steps, f"{_BESIDE_REFRESH} analyze (beside)"):
            await cur.execute(f"ANALYZE ledger.{_BESIDE_REFRESH}")


async def _vacuum(engine: AsyncEngine, tables: Sequence[str], steps: Steps, name: str) -> None:
    """VACUUM ``tables`` of the ledger, before their indexes are built (a pass over the heap
    alone).

    Why at all: a bulk-loaded table is not settled - no tuple has its hint bits, no page is
    all-visible, and the refresh left a dead version of each row it rewrote. Left alone, the
    first reader (the next replay, the consumer's ON CONFLICT probes) sets the hint bits and
    dirties every page, and autovacuum follows with a full pass of its own, both while the
    ledger is in use again; here it is one pass while the end's other connection builds
    indexes. VACUUM refuses a transaction block, hence its own autocommit connection; it
    takes no advisory lock (a writer's rows are welcome meanwhile) and no statement deadline
    (a 10M-event ledger's billing_events is an operator's long job, as its index builds).
    """
    with _timed(steps, name):
        async with raw_autocommit(engine) as conn:
            # The batches committed asynchronously (synchronous_commit off): until the WAL
            # holding their commits is flushed, VACUUM may neither set their rows' hint bits
            # nor mark their pages all-visible. A synchronous commit of a transaction that
            # wrote WAL flushes everything before it; one that wrote none does not (measured),
            # hence a transactional WAL message (PostgreSQL 9.6+, any role; no table touched).
            async with conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit = on")
                await conn.execute(
                    "SELECT pg_logical_emit_message(true, 'billing.ledger', 'bulk replay end')"
                )
            await conn.execute("SET statement_timeout = 0")
            try:
                for table in tables:
                    await conn.execute(
                        sql.SQL("VACUUM {}.{}").format(
                            sql.Identifier("ledger"), sql.Identifier(table)
                        )
                    )
            finally:
                await conn.execute("RESET statement_timeout")


async def _replay_session(conn: psycopg.AsyncConnection[Any], defer: bool) -> None:
    """Settings of one replay transaction (``SET LOCAL``: gone at commit)."""
    await conn.execute("SET LOCAL synchronous_commit = off")
    if defer:
        await conn.execute("SET LOCAL ledger.defer_query_support = 'on'")


async def _projected(
    stub: ingest_pb2_grpc.IngestServiceStub,
    *,
    since: datetime | None,
    until: datetime | None,
    batch_size: int,
    executor: Executor | None,
) -> AsyncGenerator[tuple[ProjectedBatch, list[Archived], tuple[datetime, str] | None], None]:
    """The archive's batches, projected, in order: the stream is read and projected ahead
    (one batch in flight per worker) while the caller writes the previous batch."""
    in_flight = max(getattr(executor, "_max_workers", 1), 1) if executor is not None else 1
    queue: asyncio.Queue[
        tuple[asyncio.Future[ProjectedBatch], list[Archived], tuple[datetime, str] | None] | None
    ]
    queue = asyncio.Queue(maxsize=in_flight + 1)
    loop = asyncio.get_running_loop()

    async def produce() -> None:
        async for events, horizon in archive_batches(
            stub, since=since, until=until, batch_size=batch_size
        ):
            future: asyncio.Future[ProjectedBatch]
            if executor is not None:
                future = loop.run_in_executor(executor, project_merged, events)
            else:
                future = loop.create_future()
                future.set_result(project_merged(events))
            await queue.put((future, events, horizon))
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
            future, events, horizon = item
            yield await future, events, horizon
        await producer
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer


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
    stream = _projected(stub, since=since, until=until, batch_size=batch_size, executor=executor)
    return await write_projected(engine, stream, schema=schema)


#: One projected batch, the archived events it came from, and the (created, id) of its last.
Projected = tuple[ProjectedBatch, list[Archived], tuple[datetime, str] | None]


async def write_projected(
    engine: AsyncEngine,
    stream: AsyncGenerator[Projected, None],
    *,
    schema: str = "ledger",
) -> ReplayReport:
    """The writing half of a replay: apply projected batches in order, each in its own
    transaction, with the bulk-load steps before the first and after the last (what
    ``bench.ledger_writer_bench`` times on its own, from batches projected beforehand)."""
    started = time.perf_counter()
    report = ReplayReport()
    live = schema == "ledger"
    if live:
        defer, fresh = await _start_deferral(engine)
    else:
        defer, fresh = False, await _start_scratch(engine, schema)
    # The derived columns of a bulk replay are refreshed once at the end, not per batch.
    refresh = not (defer if live else fresh)
    try:
        async with contextlib.aclosing(stream):  # an error here stops the reader at once
            async for batch, events, horizon in stream:
                fresh = await _write(engine, report, batch, events, schema, defer, fresh, refresh)
                report.horizon = horizon or report.horizon
        finishing = time.perf_counter()
        if live and defer:
            await _finish_deferral(engine, report.finish_steps)
        elif live:
            await _restore(engine, schema)  # nothing dropped, unless by another replay
        elif not refresh:
            await _finish_scratch(engine, schema)
        report.finish_seconds = time.perf_counter() - finishing
    except BaseException:
        # A failed replay gives the indexes back now if it can (else the next replay or the
        # service's start does); its other unfinished work is the next replay's, as before.
        try:
            await _restore(engine, schema)
        except (DatabaseUnavailable, psycopg.Error) as exc:
            log.warning("indexes left to the next replay", extra={"error": repr(exc)})
        raise
    report.seconds = time.perf_counter() - started
    return report


async def _write(
    engine: AsyncEngine,
    report: ReplayReport,
    batch: ProjectedBatch,
    events: list[Archived],
    schema: str,
    defer: bool,
    fresh: bool,
    refresh: bool,
) -> bool:
    """Write one batch and count it; returns whether later batches may still be copied in
    directly (``fresh``)."""
    report.examined += batch.examined
    REPLAYED.inc(batch.examined)
    for event_id, reason in batch.unreadable:
        _unreadable(report, event_id, reason)
    failed = list(batch.failed)
    readable = batch.examined - len(batch.unreadable) - len(batch.failed)
    try:
        try:
            result = await _apply(engine, batch, readable, schema, defer, fresh, refresh)
        except psycopg.errors.UniqueViolation:
            if not fresh:
                raise
            # Something else writes this ledger too (the consumer): from now on every
            # batch goes through ON CONFLICT, starting with this one again.
            fresh = False
            result = await _apply(engine, batch, readable, schema, defer, fresh, refresh)
        report.applied += result.applied
        report.unsupported += result.unsupported
    except DatabaseUnavailable:
        raise
    except Exception as exc:  # one event fails the batch: apply it in halves, as the
        log.warning(  # consumer does, and set aside the ones that still fail alone
            "replay batch failed, applying it in halves",
            extra={"size": len(events), "error": repr(exc)},
        )
        bad = {e for e, _ in batch.unreadable} | {e for e, _, _ in batch.failed}
        failed.extend(
            await _in_halves(engine, [e for e in events if e[0] not in bad], report, schema, defer)
        )
    for event_id, payload, error in failed:
        await _failed(engine, report, event_id, payload, error, live=schema == "ledger")
    return fresh


async def _apply(
    engine: AsyncEngine,
    batch: ProjectedBatch,
    readable: int,
    schema: str,
    defer: bool,
    fresh: bool,
    refresh: bool,
) -> BatchResult:
    """Write one projected batch in its own transaction."""
    async with raw_transaction(engine) as conn:
        if schema == "ledger":
            await _replay_session(conn, defer)
        return await apply_staged(
            conn, batch.staged, readable, schema=schema, fresh=fresh, refresh=refresh
        )


def _unreadable(report: ReplayReport, event_id: str, reason: str) -> None:
    report.unreadable += 1
    UNREADABLE.inc()
    log.warning("unreadable archived event", extra={"event_id": event_id, "error": reason})


async def _in_halves(
    engine: AsyncEngine,
    events: Sequence[Archived],
    report: ReplayReport,
    schema: str,
    defer: bool,
) -> list[tuple[str, bytes, str]]:
    """Apply a batch whose transaction failed in halves (services/ledger/culprits.py);
    returns the events that fail alone."""

    async def apply(part: Sequence[Archived]) -> BatchResult:
        async with raw_transaction(engine) as conn:
            if schema == "ledger":
                await _replay_session(conn, defer)
            return await apply_batch(conn, [payload for _, payload in part], schema=schema)

    async def applied(part: Sequence[Archived], result: BatchResult) -> None:
        report.applied += result.applied
        report.unsupported += result.unsupported

    failed: list[tuple[str, bytes, str]] = []
    for (event_id, payload), exc in await apply_in_halves(events, apply, applied):
        if isinstance(exc, BadEvent):  # cannot happen after project_merged: "unreadable"
            _unreadable(report, event_id, str(exc))
        else:
            failed.append((event_id, payload, f"{type(exc).__name__}: {exc}"))
    return failed


async def _failed(
    engine: AsyncEngine,
    report: ReplayReport,
    event_id: str,
    payload: bytes,
    error: str,
    *,
    live: bool,
) -> None:
    """An event that cannot be applied: dead-lettered (live ledger) or counted (verify)."""
    report.failed += 1
    REPLAY_FAILED.inc()
    if len(report.failures) < 20:
        report.failures.append((event_id, error[:500]))
    if live:
        async with raw_transaction(engine) as conn:
            await record_replay_dead_letter(
                conn, stripe_event_id=event_id, payload=payload, error=error
            )
    log.error(
        "replay could not apply an archived event",
        extra={"event_id": event_id, "error": error[:500], "dead_lettered": live},
    )
