"""``LedgerDriftReadsMixin``: the ledger RPCs the drift service reads (``drift_inputs.proto``).

Thin: validation and message building only; the queries live in :mod:`.drift_reads`. The
ledger's servicer inherits it and provides ``self._engine``. Errors go through the shared
mapping (``services.common.grpc_errors``): a bad request is INVALID_ARGUMENT, the database
away UNAVAILABLE.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
from billing.ledger.v1 import drift_inputs_pb2 as pb
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.grpc_errors import InvalidArgument
from services.common.timeconv import from_timestamp, to_timestamp
from services.ledger.drift_reads import (
    KNOWN_OBJECT_TABLES,
    MAX_KEYED,
    batch_size,
    customer_accounts,
    known_among,
    list_drift_signals,
    stream_known_objects,
    stream_subscription_created,
    stream_subscription_states,
    subscription_states_of,
)
from services.ledger.snapshots import parse_snapshot, record_snapshot

DRIFT_READ_METHODS = frozenset(
    {
        "StreamSubscriptionStates",
        "StreamKnownObjects",
        "ListDriftSignals",
        "LookupCustomerAccounts",
    }
)
# RecordStripeSnapshot writes the ledger: admin only (not in the set above).


def subscription_state(row: dict[str, Any]) -> pb.SubscriptionState:
    return pb.SubscriptionState(
        subscription_id=row["subscription_id"],
        stripe_customer_id=row["stripe_customer_id"] or "",
        account_id=row["account_id"] or "",
        status=row["status"] or "",
        price_id=row["price_id"] or "",
        plan=row["plan"] or "",
        quantity=row["quantity"] or 0,
        current_period_end=to_timestamp(row["current_period_end"]),
        cancel_at_period_end=bool(row["cancel_at_period_end"]),
        schedule_id=row["schedule_id"] or "",
        scheduled_plan=row["scheduled_plan"] or "",
        latest_invoice_id=row["latest_invoice_id"] or "",
        latest_invoice_status=row["latest_invoice_status"] or "",
        state_event_id=row["state_event_id"],
        state_event_created=to_timestamp(row["state_event_created"]),
        committed_mrr=row["committed_mrr"] or 0,
        currency=row["currency"] or "",
        subscription_created=to_timestamp(row["subscribed_since"]),
        latest_invoice_created=to_timestamp(row["latest_invoice_created"]),
    )


def _size(requested: int) -> int:
    try:
        return batch_size(requested)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def _keyed_ids(ids: Iterable[str], field: str) -> list[str]:
    """A keyed read's ids, checked once for every keyed RPC: at most ``MAX_KEYED``, each a
    non-empty printable id of at most 255 characters (a NUL would otherwise reach PostgreSQL
    and come back as a database error instead of the caller's mistake)."""
    checked = list(ids)
    if len(checked) > MAX_KEYED:
        raise InvalidArgument(f"at most {MAX_KEYED} {field} per request")
    if any(not i.strip() or len(i) > 255 or not i.isprintable() for i in checked):
        raise InvalidArgument(f"{field} must be non-empty printable ids of at most 255 characters")
    return checked


class LedgerDriftReadsMixin:
    _engine: AsyncEngine

    async def StreamSubscriptionStates(
        self, request: pb.StreamSubscriptionStatesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubscriptionStateBatch]:
        size = _size(request.batch_size)
        if request.subscription_ids:
            ids = _keyed_ids(request.subscription_ids, "subscription_ids")
            rows = await subscription_states_of(self._engine, ids)
            for start in range(0, len(rows), size):
                yield pb.SubscriptionStateBatch(
                    states=[subscription_state(r) for r in rows[start : start + size]]
                )
            return
        if request.created_only:
            async for rows in stream_subscription_created(self._engine, size):
                yield pb.SubscriptionStateBatch(
                    states=[
                        pb.SubscriptionState(
                            subscription_id=r["subscription_id"],
                            subscription_created=to_timestamp(r["subscribed_since"]),
                        )
                        for r in rows
                    ]
                )
            return
        customer = request.stripe_customer_id or None
        async for rows in stream_subscription_states(self._engine, customer, size):
            yield pb.SubscriptionStateBatch(states=[subscription_state(r) for r in rows])

    async def StreamKnownObjects(
        self, request: pb.StreamKnownObjectsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.KnownObjectBatch]:
        if request.kind not in KNOWN_OBJECT_TABLES:
            raise InvalidArgument(f"kind must be one of {sorted(KNOWN_OBJECT_TABLES)}")
        size = _size(request.batch_size)
        if request.ids:
            known = await known_among(self._engine, request.kind, _keyed_ids(request.ids, "ids"))
            for start in range(0, len(known), size):
                yield pb.KnownObjectBatch(ids=known[start : start + size])
            return
        async for ids in stream_known_objects(self._engine, request.kind, size):
            yield pb.KnownObjectBatch(ids=ids)

    async def ListDriftSignals(
        self, request: pb.ListDriftSignalsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDriftSignalsResponse:
        if request.limit < 0:
            raise InvalidArgument("limit must be >= 0")
        rows = await list_drift_signals(self._engine, min(request.limit or 1000, 10_000))
        return pb.ListDriftSignalsResponse(
            signals=[
                pb.DriftSignal(
                    kind=r.kind,
                    severity=r.severity,
                    stripe_event_id=r.stripe_event_id,
                    stripe_event_type=r.stripe_event_type or "",
                    api_version=r.api_version or "",
                    subscription_id=r.subscription_id or "",
                    stripe_customer_id=r.stripe_customer_id or "",
                    account_id=r.account_id or "",
                    detail=r.detail,
                    occurred_at=to_timestamp(r.occurred_at),
                )
                for r in rows
            ]
        )

    async def LookupCustomerAccounts(
        self, request: pb.LookupCustomerAccountsRequest, context: grpc.aio.ServicerContext
    ) -> pb.LookupCustomerAccountsResponse:
        ids = _keyed_ids(request.stripe_customer_ids, "stripe_customer_ids")
        rows = await customer_accounts(self._engine, ids) if ids else []
        return pb.LookupCustomerAccountsResponse(
            accounts=[
                pb.CustomerAccount(
                    stripe_customer_id=r.stripe_customer_id,
                    account_id=r.account_id,
                    customer_row=r.customer_row,
                )
                for r in rows
            ]
        )

    async def RecordStripeSnapshot(
        self, request: pb.RecordStripeSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordStripeSnapshotResponse:
        if not request.HasField("taken_at"):
            raise InvalidArgument("taken_at is required")
        taken_at = from_timestamp(request.taken_at, True)
        assert taken_at is not None
        snap = parse_snapshot(
            request.snapshot_id,
            request.kind,
            request.payload,
            taken_at,
            request.api_version,
            request.operator,
            request.note,
        )
        result = await record_snapshot(self._engine, snap)
        response = pb.RecordStripeSnapshotResponse(
            snapshot_id=snap.snapshot_id,
            created=result.created,
            currency=result.currency or "",
            object_type=snap.object_type,
            object_id=snap.object_id,
        )
        if result.committed_mrr is not None:
            response.committed_mrr = result.committed_mrr
        return response
