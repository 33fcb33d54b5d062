"""``billing.drift.v1``: ``DriftService`` and ``StripeOperations`` servicers (thin).

Validation and message building only; the work lives in :mod:`.detector`, :mod:`.sync`,
:mod:`.operations` and :mod:`.store`. Errors are ``ServiceError`` subclasses mapped by the
shared interceptor (``services.common.grpc_errors``).
"""

from __future__ import annotations

from typing import Any

import grpc
from billing.common.v1 import common_pb2
from billing.drift.v1 import drift_pb2 as pb
from billing.drift.v1 import drift_pb2_grpc

from services.common.grpc_errors import InvalidArgument
from services.common.paging import decode_token, encode_token, int_key, page_size, text_key
from services.common.timeconv import from_micros, to_timestamp
from services.drift import store
from services.drift.detector import DriftDeps, run_pass
from services.drift.operations import StripeOperationsService, SubscriptionResult
from services.drift.sync import DriftActions
from services.drift.tables import KINDS, SEVERITIES

DRIFT_READ_ONLY = (
    "ListDriftRuns",
    "ListDiscrepancies",
    "GetCustomerDiagnostic",
    "GetDataQualitySummary",
)
OPERATIONS_READ_ONLY = ("ListOperations",)


def run_message(row: Any) -> pb.DriftRun:
    finished = row.finished_at
    duration = ((finished or row.started_at) - row.started_at).total_seconds()
    return pb.DriftRun(
        id=row.id,
        scope=row.scope,
        trigger=row.trigger,
        status=row.status,
        started_at=to_timestamp(row.started_at),
        finished_at=to_timestamp(finished),
        subscriptions_checked=row.subscriptions_checked,
        subscriptions_total=row.subscriptions_total,
        discrepancies_found=row.discrepancies_found,
        events_recovered=row.events_recovered,
        stripe_requests=row.stripe_requests,
        errors=row.errors,
        duration_seconds=duration if finished else 0.0,
        error_message=row.error_message or "",
    )


def discrepancy_message(row: Any) -> pb.Discrepancy:
    return pb.Discrepancy(
        id=str(row.id),
        kind=row.kind,
        severity=row.severity,
        account_id=row.account_id or "",
        subscription_id=row.subscription_id or "",
        stripe_event_id=row.stripe_event_id or "",
        stripe_object_id=row.stripe_object_id or "",
        field=row.field or "",
        ledger_value=row.ledger_value or "",
        stripe_value=row.stripe_value or "",
        detail=row.detail or "",
        run_id=row.run_id or "",
        detected_at=to_timestamp(row.detected_at),
        resolved_at=to_timestamp(row.resolved_at),
        acknowledged_at=to_timestamp(row.acknowledged_at),
        acknowledged_by=row.acknowledged_by or "",
        acknowledgement_note=row.acknowledgement_note or "",
    )


def subscription_message(result: SubscriptionResult) -> pb.SubscriptionOperationResponse:
    message = pb.SubscriptionOperationResponse(
        subscription_id=result.subscription_id,
        status=result.status,
        cancel_at_period_end=result.cancel_at_period_end,
        quantity=result.quantity,
        idempotency_key=result.idempotency_key,
        verified=result.verified,
    )
    if result.current_period_end is not None:
        message.current_period_end.FromSeconds(result.current_period_end)
    return message


def _text(value: str, name: str, limit: int = 255) -> str:
    if "\x00" in value or len(value) > limit:
        raise InvalidArgument(f"{name} is not valid")
    return value


class DriftServicer(drift_pb2_grpc.DriftServiceServicer):
    def __init__(self, deps: DriftDeps, actions: DriftActions) -> None:
        self.deps = deps
        self.actions = actions

    async def RunDriftPass(
        self, request: pb.RunDriftPassRequest, context: grpc.aio.ServicerContext
    ) -> pb.DriftRun:
        account = _text(request.account_id, "account_id") or None
        result = await run_pass(
            self.deps,
            account_id=account,
            trigger="manual",
            operator=_text(request.operator, "operator") or None,
            incremental=request.incremental,
        )
        row = await store.get_run(self.deps.engine, result.run_id)
        return run_message(row)

    async def ListDriftRuns(
        self, request: pb.ListDriftRunsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDriftRunsResponse:
        size = page_size(request.page.page_size)
        key = decode_token(request.page.page_token)
        after = None
        if key is not None:
            if len(key) != 2:
                raise InvalidArgument("malformed page_token")
            after = (from_micros(int_key(key[0])), text_key(key[1]))
        rows = await store.list_runs(self.deps.engine, size + 1, after)
        total = rows[0].total if rows else 0
        more = len(rows) > size
        rows = rows[:size]
        token = ""
        if more:
            last = rows[-1]
            token = encode_token([int(last.started_at.timestamp() * 1_000_000), last.id])
        return pb.ListDriftRunsResponse(
            runs=[run_message(r) for r in rows],
            page=common_pb2.PageInfo(next_page_token=token, total_count=total),
        )

    async def ListDiscrepancies(
        self, request: pb.ListDiscrepanciesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDiscrepanciesResponse:
        if request.kind and request.kind not in KINDS:
            raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}")
        if request.severity and request.severity not in SEVERITIES:
            raise InvalidArgument("severity must be Warning or Critical")
        size = page_size(request.page_size)
        key = decode_token(request.page_token)
        after = int_key(key[0]) if key else None
        flt = store.DiscrepancyFilter(
            account_id=_text(request.account_id, "account_id") or None,
            subscription_id=_text(request.subscription_id, "subscription_id") or None,
            kind=request.kind or None,
            severity=request.severity or None,
            include_acknowledged=request.include_acknowledged,
            include_resolved=request.include_resolved,
        )
        rows, total = await store.list_discrepancies(self.deps.engine, flt, size + 1, after)
        more = len(rows) > size
        rows = rows[:size]
        return pb.ListDiscrepanciesResponse(
            discrepancies=[discrepancy_message(r) for r in rows],
            next_page_token=encode_token([rows[-1].id]) if more else "",
            total_count=total,
        )

    async def SyncAccount(
        self, request: pb.SyncAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.SyncAccountResponse:
        account = _text(request.account_id, "account_id")
        if not account:
            raise InvalidArgument("account_id is required")
        outcome = await self.actions.sync_account(account, _text(request.operator, "operator"))
        row = await store.get_run(self.deps.engine, outcome.run_id)
        return pb.SyncAccountResponse(
            run=run_message(row),
            events_appended=outcome.events_appended,
            remaining=[discrepancy_message(r) for r in outcome.remaining],
            clean=not outcome.remaining,
            unrecoverable_subscription_ids=outcome.unrecoverable_subscription_ids,
        )

    async def AcknowledgeDrift(
        self, request: pb.AcknowledgeDriftRequest, context: grpc.aio.ServicerContext
    ) -> pb.AcknowledgeDriftResponse:
        account = _text(request.account_id, "account_id")
        operator = _text(request.operator, "operator").strip()
        if not account or not operator:
            raise InvalidArgument("account_id and operator are required")
        note = _text(request.note, "note", 2000)
        count, at = await store.acknowledge(self.deps.engine, account, operator, note)
        return pb.AcknowledgeDriftResponse(acknowledged=count, acknowledged_at=to_timestamp(at))

    async def SetRecoveryCutoff(
        self, request: pb.SetRecoveryCutoffRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetRecoveryCutoffResponse:
        return await self.actions.set_recovery_cutoff(request)

    async def GetCustomerDiagnostic(
        self, request: pb.GetCustomerDiagnosticRequest, context: grpc.aio.ServicerContext
    ) -> pb.CustomerDiagnostic:
        account = _text(request.account_id, "account_id")
        if not account:
            raise InvalidArgument("account_id is required")
        return await self.actions.diagnostic(account)

    async def GetDataQualitySummary(
        self, request: pb.GetDataQualitySummaryRequest, context: grpc.aio.ServicerContext
    ) -> pb.DataQualitySummary:
        return await self.actions.data_quality()

    async def ImportBaseline(
        self, request: pb.ImportBaselineRequest, context: grpc.aio.ServicerContext
    ) -> pb.ImportBaselineResponse:
        return await self.actions.import_baseline(_text(request.operator, "operator"))


class StripeOperationsServicer(drift_pb2_grpc.StripeOperationsServicer):
    def __init__(self, ops: StripeOperationsService) -> None:
        self.ops = ops

    async def RefundPayment(
        self, request: pb.RefundPaymentRequest, context: grpc.aio.ServicerContext
    ) -> pb.RefundPaymentResponse:
        result = await self.ops.refund(
            charge_id=_text(request.charge_id, "charge_id"),
            payment_intent_id=_text(request.payment_intent_id, "payment_intent_id"),
            amount=request.amount_minor if request.HasField("amount_minor") else None,
            reason=_text(request.reason, "reason"),
            operator=_text(request.operator, "operator"),
            idempotency_key=_text(request.idempotency_key, "idempotency_key"),
        )
        return pb.RefundPaymentResponse(
            refund_id=result.refund_id,
            status=result.status,
            amount=common_pb2.Money(amount_minor=result.amount, currency=result.currency),
            refundable_after=common_pb2.Money(
                amount_minor=result.refundable_after, currency=result.currency
            ),
            idempotency_key=result.idempotency_key,
        )

    async def CancelSubscription(
        self, request: pb.CancelSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubscriptionOperationResponse:
        result = await self.ops.cancel(
            subscription_id=_text(request.subscription_id, "subscription_id"),
            at_period_end=request.at_period_end,
            operator=_text(request.operator, "operator"),
            idempotency_key=_text(request.idempotency_key, "idempotency_key"),
            reason=_text(request.reason, "reason", 2000),
        )
        return subscription_message(result)

    async def ReactivateSubscription(
        self, request: pb.ReactivateSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubscriptionOperationResponse:
        result = await self.ops.reactivate(
            subscription_id=_text(request.subscription_id, "subscription_id"),
            operator=_text(request.operator, "operator"),
            idempotency_key=_text(request.idempotency_key, "idempotency_key"),
        )
        return subscription_message(result)

    async def UpdateSubscriptionQuantity(
        self, request: pb.UpdateSubscriptionQuantityRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubscriptionOperationResponse:
        result = await self.ops.update_quantity(
            subscription_id=_text(request.subscription_id, "subscription_id"),
            quantity=request.quantity,
            item_id=_text(request.item_id, "item_id"),
            operator=_text(request.operator, "operator"),
            idempotency_key=_text(request.idempotency_key, "idempotency_key"),
        )
        return subscription_message(result)

    async def ListOperations(
        self, request: pb.ListOperationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListOperationsResponse:
        import json

        size = page_size(request.page_size)
        key = decode_token(request.page_token)
        after = int_key(key[0]) if key else None
        rows = await store.list_operations(
            self.ops.engine, _text(request.target, "target") or None, size + 1, after
        )
        more = len(rows) > size
        rows = rows[:size]
        return pb.ListOperationsResponse(
            operations=[
                pb.Operation(
                    id=str(r.id),
                    operation=r.operation,
                    target=r.target,
                    operator=r.operator,
                    parameters_json=json.dumps(r.parameters, sort_keys=True),
                    outcome=r.outcome,
                    error=r.error or "",
                    idempotency_key=r.idempotency_key or "",
                    created_at=to_timestamp(r.created_at),
                )
                for r in rows
            ],
            next_page_token=encode_token([rows[-1].id]) if more else "",
        )
