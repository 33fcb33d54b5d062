"""StripeOperations end to end: refunds with idempotency keys, verified subscription changes,
and the audit of every call."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from billing.drift.v1 import drift_pb2

from tests.drift.conftest import DriftStack

pytestmark = pytest.mark.integration


def refundable_charge(stack: DriftStack) -> dict[str, Any]:
    charges = stack.sim.world.objects["charge"].values()
    return next(
        c
        for c in charges
        if c["status"] == "succeeded" and c["amount_refunded"] == 0 and c["amount"] >= 100
    )


async def test_refunds(stack: DriftStack, ops_stub: Any) -> None:
    charge = refundable_charge(stack)
    amount = charge["amount"]
    part = amount // 4
    first = await ops_stub.RefundPayment(
        drift_pb2.RefundPaymentRequest(
            charge_id=charge["id"], amount_minor=part, operator="alice", idempotency_key="k-1"
        )
    )
    assert (
        first.amount.amount_minor == part and first.refundable_after.amount_minor == amount - part
    )
    retried = await ops_stub.RefundPayment(
        drift_pb2.RefundPaymentRequest(
            charge_id=charge["id"], amount_minor=part, operator="alice", idempotency_key="k-1"
        )
    )
    assert retried.refund_id == first.refund_id, "a retry with the same key refunds once"
    second = await ops_stub.RefundPayment(
        drift_pb2.RefundPaymentRequest(charge_id=charge["id"], amount_minor=part, operator="bob")
    )
    assert second.refund_id != first.refund_id and second.idempotency_key
    stripe_charge = stack.stripe().v1.charges.retrieve(charge["id"])
    assert stripe_charge.amount_refunded == 2 * part
    left = amount - 2 * part
    with pytest.raises(grpc.aio.AioRpcError) as too_much:
        await ops_stub.RefundPayment(
            drift_pb2.RefundPaymentRequest(
                charge_id=charge["id"], amount_minor=amount, operator="bob"
            )
        )
    assert too_much.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert str(left) in (too_much.value.details() or "")
    rest = await ops_stub.RefundPayment(
        drift_pb2.RefundPaymentRequest(charge_id=charge["id"], operator="bob")
    )
    assert rest.amount.amount_minor == left and rest.refundable_after.amount_minor == 0
    with pytest.raises(grpc.aio.AioRpcError) as double:
        await ops_stub.RefundPayment(
            drift_pb2.RefundPaymentRequest(charge_id=charge["id"], operator="bob")
        )
    assert double.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "refundable amount is 0" in (double.value.details() or "")
    refund = stack.stripe().v1.refunds.retrieve(first.refund_id)
    assert refund.metadata is not None and refund.metadata["operator"] == "alice"
    audit = await ops_stub.ListOperations(drift_pb2.ListOperationsRequest(target=charge["id"]))
    outcomes = [(o.operator, o.outcome) for o in reversed(audit.operations)]
    assert outcomes == [
        ("alice", "succeeded"),
        ("alice", "succeeded"),
        ("bob", "succeeded"),
        ("bob", "failed"),
        ("bob", "succeeded"),
        ("bob", "failed"),
    ]


async def test_bad_refund_requests(stack: DriftStack, ops_stub: Any) -> None:
    cases = [
        drift_pb2.RefundPaymentRequest(operator="x"),
        drift_pb2.RefundPaymentRequest(charge_id="ch_x", amount_minor=0, operator="x"),
        drift_pb2.RefundPaymentRequest(charge_id="ch_x", reason="because", operator="x"),
        drift_pb2.RefundPaymentRequest(charge_id="ch_x"),
        drift_pb2.RefundPaymentRequest(charge_id="../v1/x", operator="x"),
    ]
    for request in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ops_stub.RefundPayment(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await ops_stub.RefundPayment(
            drift_pb2.RefundPaymentRequest(charge_id="ch_doesnotexist", operator="x")
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_subscription_operations(stack: DriftStack, ops_stub: Any) -> None:
    sub = next(
        s
        for s in stack.sim.world.objects["subscription"].values()
        if s["status"] == "active" and not s["cancel_at_period_end"]
    )
    sid = sub["id"]
    with pytest.raises(grpc.aio.AioRpcError) as not_cancelling:
        await ops_stub.ReactivateSubscription(
            drift_pb2.ReactivateSubscriptionRequest(subscription_id=sid, operator="ops")
        )
    assert not_cancelling.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    cancelled = await ops_stub.CancelSubscription(
        drift_pb2.CancelSubscriptionRequest(subscription_id=sid, at_period_end=True, operator="ops")
    )
    assert cancelled.verified and cancelled.cancel_at_period_end and cancelled.status == "active"
    back = await ops_stub.ReactivateSubscription(
        drift_pb2.ReactivateSubscriptionRequest(subscription_id=sid, operator="ops")
    )
    assert back.verified and not back.cancel_at_period_end
    more = await ops_stub.UpdateSubscriptionQuantity(
        drift_pb2.UpdateSubscriptionQuantityRequest(subscription_id=sid, quantity=5, operator="ops")
    )
    assert more.verified and more.quantity == 5
    with pytest.raises(grpc.aio.AioRpcError) as zero:
        await ops_stub.UpdateSubscriptionQuantity(
            drift_pb2.UpdateSubscriptionQuantityRequest(
                subscription_id=sid, quantity=0, operator="ops"
            )
        )
    assert zero.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    gone = await ops_stub.CancelSubscription(
        drift_pb2.CancelSubscriptionRequest(subscription_id=sid, operator="ops")
    )
    assert gone.verified and gone.status == "canceled"
    live = stack.stripe().v1.subscriptions.retrieve(sid)
    assert live.status == "canceled" and live.metadata["operator"] == "ops"
    # The results reach the ledger through webhooks only: deliver them, then drift is clean.
    await stack.deliver()
    await stack.settled()
    audit = await ops_stub.ListOperations(drift_pb2.ListOperationsRequest(target=sid))
    assert [o.operation for o in reversed(audit.operations)] == [
        "reactivate_subscription",
        "cancel_subscription",
        "reactivate_subscription",
        "update_quantity",
        "update_quantity",
        "cancel_subscription",
    ]
    assert [o.outcome for o in reversed(audit.operations)] == [
        "failed",
        "succeeded",
        "succeeded",
        "succeeded",
        "failed",
        "succeeded",
    ]
