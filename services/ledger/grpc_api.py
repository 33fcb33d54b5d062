"""``billing.ledger.v1.LedgerService``: billing events, replay, verification, dead letters.

Error mapping: NOT_FOUND for an unknown event or dead letter, INVALID_ARGUMENT for a bad
request, UNAVAILABLE when PostgreSQL or ingest cannot be reached (the caller retries).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, NoReturn

import grpc
from billing.common.v1 import common_pb2
from billing.ingest.v1 import ingest_pb2_grpc
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from psycopg.rows import dict_row
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.grpc_errors import abort
from services.common.paging import BadPageToken, decode_token, encode_token, int_key, page_size
from services.common.timeconv import from_timestamp, to_timestamp
from services.ledger.db import DatabaseUnavailable, raw_transaction
from services.ledger.dead_letters import (
    DeadLetterRow,
    get_dead_letter,
    list_dead_letters,
    mark_resolved,
    mark_retry_failed,
    purge_dead_letters,
)
from services.ledger.domain.rules import account_id
from services.ledger.drift_servicer import DRIFT_READ_METHODS, LedgerDriftReadsMixin
from services.ledger.effects import project_event
from services.ledger.projection import apply_batch
from services.ledger.queries.servicer import LedgerQueriesMixin
from services.ledger.replay import replay_archive
from services.ledger.verify import mismatch_json, verify_ledger

log = logging.getLogger(__name__)

# The methods a read token may call (see services.common.grpc_auth); the rest need admin.
# VerifyLedger changes no ledger row but builds a scratch schema and costs a full rebuild,
# so it is an operator's (admin) action like ReplayArchive.
READ_ONLY_METHODS = frozenset(
    {
        "GetBillingEvent",
        "ListDeadLetters",
        "GetDashboard",
        "ListAccounts",
        "GetAccount",
        "ListBillingEvents",
        "ListInvoices",
        "CheckMrrConsistency",
        "ListPlans",
        *DRIFT_READ_METHODS,
    }
)

LEDGER_AWAY = "ledger database unavailable, retry later"

_STATUS_TO_PB = {
    "dead": ledger_pb2.DEAD_LETTER_STATUS_DEAD,
    "resolved": ledger_pb2.DEAD_LETTER_STATUS_RESOLVED,
}
_PB_TO_STATUS = {v: k for k, v in _STATUS_TO_PB.items()}

# The row plus "MRR as of the event" for rows whose payload carried no subscription state.
BILLING_EVENT_SQL = """
SELECT b.*, a.tenant_id AS linked_tenant_id, l.tenant_id AS explicit_tenant_id,
       CASE WHEN b.committed_mrr IS NULL AND b.subscription_id IS NOT NULL
            THEN ledger.committed_mrr_as_of(b.subscription_id, b.occurred_at, b.stripe_event_id)
       END AS carried_mrr
FROM ledger.billing_events b
LEFT JOIN ledger.accounts a ON a.stripe_customer_id = b.stripe_customer_id
LEFT JOIN ledger.customer_links l ON l.stripe_customer_id = b.stripe_customer_id
WHERE b.stripe_event_id = %s
"""


def billing_event_message(row: dict[str, Any]) -> ledger_pb2.BillingEvent:
    carried = row["committed_mrr"] is None and row["carried_mrr"] is not None
    message = ledger_pb2.BillingEvent(
        id=row["id"],
        stripe_event_id=row["stripe_event_id"],
        stripe_event_type=row["stripe_event_type"],
        event_type=row["event_type"],
        account_id=account_id(
            row["explicit_tenant_id"],
            row["tenant_id"],
            row["linked_tenant_id"],
            row["stripe_customer_id"],
        )
        or "",
        tenant_id=row["tenant_id"] or "",
        stripe_customer_id=row["stripe_customer_id"] or "",
        subscription_id=row["subscription_id"] or "",
        from_plan=row["from_plan"] or "",
        to_plan=row["to_plan"] or "",
        committed_mrr_carried=carried,
        currency=row["currency"] or "",
        occurred_at=to_timestamp(row["occurred_at"]),
        reason=row["reason"] or "",
        flags=list(row["flags"] or []),
        api_version=row["api_version"] or "",
        drift_detected=bool(row["drift_detected"]),
        created_at=to_timestamp(row["created_at"]),
    )
    for name in ("previous_amount", "new_amount", "amount_delta", "refund_amount", "forward_mrr"):
        if row[name] is not None:
            setattr(message, name, row[name])
    mrr = row["carried_mrr"] if carried else row["committed_mrr"]
    if mrr is not None:
        message.committed_mrr = mrr
    return message


def dead_letter_message(row: DeadLetterRow, include_payload: bool) -> ledger_pb2.DeadLetter:
    return ledger_pb2.DeadLetter(
        id=row.id,
        stream_seq=row.stream_seq or 0,
        subject=row.subject,
        stripe_event_id=row.stripe_event_id or "",
        error=row.error,
        deliveries=row.deliveries,
        first_failed_at=to_timestamp(row.first_failed_at),
        last_failed_at=to_timestamp(row.last_failed_at),
        status=_STATUS_TO_PB.get(row.status, ledger_pb2.DEAD_LETTER_STATUS_UNSPECIFIED),
        retries=row.retries,
        resolved_at=to_timestamp(row.resolved_at),
        payload=row.payload if include_payload else b"",
    )


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, text: str) -> NoReturn:
    await abort(context, code, text)  # the shared helper: details shortened


class LedgerServicer(
    LedgerQueriesMixin, LedgerDriftReadsMixin, ledger_pb2_grpc.LedgerServiceServicer
):
    """Billing events, replay, verification and dead letters (here) plus the back-office
    queries (``LedgerQueriesMixin``); writes go through the projection."""

    def __init__(
        self,
        engine: AsyncEngine,
        ingest_stub: Callable[[], ingest_pb2_grpc.IngestServiceStub],
        *,
        replay_batch_size: int = 2000,
        executor: Executor | None = None,
        before_replay: asyncio.Future[None] | None = None,
    ) -> None:
        self._engine = engine
        self._ingest_stub = ingest_stub
        self._replay_batch_size = replay_batch_size
        self._executor = executor
        # The service's start-time rebuild of indexes a killed bulk replay left dropped
        # (services.ledger.bulk_indexes.restore_at_start): a replay waits for it, or the
        # rebuild could run between this replay's first batches, after its own drop, and
        # leave the rest of the bulk load maintaining every index row by row.
        self._before_replay = before_replay

    async def GetBillingEvent(
        self, request: ledger_pb2.GetBillingEventRequest, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.BillingEvent:
        if not request.stripe_event_id:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "stripe_event_id is required")
        try:
            async with (
                raw_transaction(self._engine) as conn,
                conn.cursor(row_factory=dict_row) as cur,
            ):
                await cur.execute(BILLING_EVENT_SQL, (request.stripe_event_id,))
                row = await cur.fetchone()
        except DatabaseUnavailable:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, LEDGER_AWAY)
        if row is None:
            await _abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"event {request.stripe_event_id} produced no billing event",
            )
        return billing_event_message(row)

    async def ReplayArchive(
        self, request: ledger_pb2.ReplayArchiveRequest, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.ReplayArchiveResponse:
        since = from_timestamp(request.since, request.HasField("since"))
        until = from_timestamp(request.until, request.HasField("until"))
        if since is not None and until is not None and until <= since:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "until must be after since")
        if self._before_replay is not None:
            # shield: a caller that gives up must not cancel the service's own rebuild.
            await asyncio.shield(self._before_replay)
        try:
            report = await replay_archive(
                self._engine,
                self._ingest_stub(),
                since=since,
                until=until,
                batch_size=self._replay_batch_size,
                executor=self._executor,
            )
        except grpc.aio.AioRpcError as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, f"ingest: {exc.details()}")
        except DatabaseUnavailable:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, LEDGER_AWAY)
        log.info(
            "replay finished",
            extra={
                "examined": report.examined,
                "applied": report.applied,
                "unreadable": report.unreadable,
                "dead_lettered": report.failed,
                "s": report.seconds,
                "finish_s": report.finish_seconds,
                "finish_steps": report.finish_steps,
            },
        )
        return ledger_pb2.ReplayArchiveResponse(
            examined=report.examined,
            applied=report.applied,
            unsupported=report.unsupported,
            seconds=report.seconds,
            unreadable=report.unreadable,
            dead_lettered=report.failed,
            finish_seconds=report.finish_seconds,
        )

    async def VerifyLedger(
        self, request: ledger_pb2.VerifyLedgerRequest, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.VerifyLedgerResponse:
        if request.sample_size < 0:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "sample_size must be >= 0")
        try:
            report = await verify_ledger(
                self._engine,
                self._ingest_stub(),
                sample_size=request.sample_size or 20,
                batch_size=self._replay_batch_size,
                executor=self._executor,
            )
        except grpc.aio.AioRpcError as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, f"ingest: {exc.details()}")
        except DatabaseUnavailable:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, LEDGER_AWAY)
        log.info(
            "verify finished",
            extra={
                "mismatches": report.mismatches,
                "unreadable": report.unreadable,
                "failed": report.failed,
            },
        )
        return ledger_pb2.VerifyLedgerResponse(
            mismatches=report.mismatches,
            examined=report.examined,
            mismatches_by_table=report.by_table,
            seconds=report.seconds,
            unreadable=report.unreadable,
            failed=report.failed,
            sample=[
                ledger_pb2.LedgerMismatch(
                    table=m.table,
                    key=m.key,
                    kind=m.kind,
                    columns=list(m.columns),
                    expected=mismatch_json(m.expected),
                    actual=mismatch_json(m.actual),
                )
                for m in report.sample
            ],
        )

    async def ListDeadLetters(
        self, request: ledger_pb2.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.ListDeadLettersResponse:
        try:
            size = page_size(request.page.page_size)
            key = decode_token(request.page.page_token)
            after = int_key(key[0]) if key else None
        except (BadPageToken, ValueError, IndexError) as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        status = _PB_TO_STATUS.get(request.status)
        if request.status and status is None:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "unknown status")
        try:
            async with raw_transaction(self._engine) as conn:
                rows, total = await list_dead_letters(
                    conn, status=status, after_id=after, limit=size + 1
                )
        except DatabaseUnavailable:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, LEDGER_AWAY)
        more = len(rows) > size
        rows = rows[:size]
        return ledger_pb2.ListDeadLettersResponse(
            dead_letters=[dead_letter_message(r, request.include_payload) for r in rows],
            page=common_pb2.PageInfo(
                next_page_token=encode_token([rows[-1].id]) if more and rows else "",
                total_count=total,
            ),
        )

    async def RetryDeadLetter(
        self, request: ledger_pb2.RetryDeadLetterRequest, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.RetryDeadLetterResponse:
        if request.id <= 0:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "id is required")
        error = ""
        try:
            async with raw_transaction(self._engine) as conn:
                row = await get_dead_letter(conn, request.id, lock=True)
                if row is None:
                    await _abort(
                        context, grpc.StatusCode.NOT_FOUND, f"dead letter {request.id} not found"
                    )
                try:
                    async with conn.transaction():  # a savepoint: a failure keeps the row
                        await apply_batch(conn, [project_event(row.payload)])
                except DatabaseUnavailable:
                    raise
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    await mark_retry_failed(conn, row.id, error)
                else:
                    await mark_resolved(conn, row.id)
                updated = await get_dead_letter(conn, request.id)
        except DatabaseUnavailable:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, LEDGER_AWAY)
        assert updated is not None
        return ledger_pb2.RetryDeadLetterResponse(
            resolved=not error, error=error, dead_letter=dead_letter_message(updated, False)
        )

    async def PurgeDeadLetters(
        self, request: ledger_pb2.PurgeDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> ledger_pb2.PurgeDeadLettersResponse:
        if not request.ids and not request.all_resolved:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "give ids or set all_resolved")
        try:
            async with raw_transaction(self._engine) as conn:
                purged = await purge_dead_letters(
                    conn, ids=list(request.ids), all_resolved=request.all_resolved
                )
        except DatabaseUnavailable:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, LEDGER_AWAY)
        return ledger_pb2.PurgeDeadLettersResponse(purged=purged)
