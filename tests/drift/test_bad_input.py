"""Bad requests to drift get INVALID_ARGUMENT (or NOT_FOUND) with a short message."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from billing.common.v1 import common_pb2
from billing.drift.v1 import drift_pb2
from google.protobuf.message import Message

from tests.drift.conftest import DriftStack
from tests.grpc_calls import call_status

pytestmark = pytest.mark.integration
DRIFT = drift_pb2.DESCRIPTOR.services_by_name["DriftService"]

BAD: list[tuple[str, Message, grpc.StatusCode]] = [
    (
        "ListDiscrepancies",
        drift_pb2.ListDiscrepanciesRequest(kind="Nope"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "ListDiscrepancies",
        drift_pb2.ListDiscrepanciesRequest(severity="Loud"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "ListDiscrepancies",
        drift_pb2.ListDiscrepanciesRequest(page_token="%%%"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "ListDiscrepancies",
        drift_pb2.ListDiscrepanciesRequest(account_id="a\x00"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "ListDriftRuns",
        drift_pb2.ListDriftRunsRequest(page=common_pb2.PageRequest(page_token="e30=")),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "RunDriftPass",
        drift_pb2.RunDriftPassRequest(account_id="tenant-unknown"),
        grpc.StatusCode.NOT_FOUND,
    ),
    ("SyncAccount", drift_pb2.SyncAccountRequest(), grpc.StatusCode.INVALID_ARGUMENT),
    (
        "AcknowledgeDrift",
        drift_pb2.AcknowledgeDriftRequest(account_id="x"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "SetRecoveryCutoff",
        drift_pb2.SetRecoveryCutoffRequest(subscription_id="x", operator="o"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (  # Stripe answers 404: NOT_FOUND, not an internal error
        "SetRecoveryCutoff",
        drift_pb2.SetRecoveryCutoffRequest(subscription_id="sub_nowhere", operator="o"),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "SetRecoveryCutoff",
        drift_pb2.SetRecoveryCutoffRequest(subscription_id="sub_x"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "GetCustomerDiagnostic",
        drift_pb2.GetCustomerDiagnosticRequest(),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
]


async def test_bad_requests(stack: DriftStack) -> None:
    from services.common.grpc_client import aio_channel

    async with aio_channel(stack.drift_addr) as channel:
        for method, request, expected in BAD:
            code, details = await call_status(channel, DRIFT.methods_by_name[method], request)
            assert code == expected, (method, code, details[:200])
            assert len(details) <= 300


async def test_page_tokens_round_trip(stack: DriftStack, drift_stub: Any) -> None:
    for _ in range(3):
        await drift_stub.RunDriftPass(drift_pb2.RunDriftPassRequest(incremental=True))
    first = await drift_stub.ListDriftRuns(
        drift_pb2.ListDriftRunsRequest(page=common_pb2.PageRequest(page_size=2))
    )
    assert len(first.runs) == 2 and first.page.total_count == 3
    rest = await drift_stub.ListDriftRuns(
        drift_pb2.ListDriftRunsRequest(
            page=common_pb2.PageRequest(page_size=2, page_token=first.page.next_page_token)
        )
    )
    assert len(rest.runs) == 1 and not rest.page.next_page_token
    assert {r.id for r in first.runs}.isdisjoint({r.id for r in rest.runs})


async def test_ledger_snapshot_requests(stack: DriftStack) -> None:
    import json

    from billing.ledger.v1 import drift_inputs_pb2, ledger_pb2_grpc
    from google.protobuf.timestamp_pb2 import Timestamp

    from services.common.grpc_client import aio_channel

    sub = next(iter(stack.sim.world.objects["subscription"].values()))
    at = Timestamp(seconds=stack.sim.app.now)
    good = drift_inputs_pb2.RecordStripeSnapshotRequest(
        snapshot_id="t:1",
        kind="cutoff",
        payload=json.dumps(sub).encode(),
        taken_at=at,
        operator="ops",
    )
    bad = [
        drift_inputs_pb2.RecordStripeSnapshotRequest(),
        drift_inputs_pb2.RecordStripeSnapshotRequest(
            snapshot_id="t:2", kind="cutoff", payload=b"{", taken_at=at, operator="o"
        ),
        drift_inputs_pb2.RecordStripeSnapshotRequest(
            snapshot_id="t 3", kind="cutoff", payload=good.payload, taken_at=at, operator="o"
        ),
        drift_inputs_pb2.RecordStripeSnapshotRequest(
            snapshot_id="t:4", kind="later", payload=good.payload, taken_at=at, operator="o"
        ),
        drift_inputs_pb2.RecordStripeSnapshotRequest(
            snapshot_id="t:5",
            kind="cutoff",
            payload=b'{"object": "charge", "id": "ch"}',
            taken_at=at,
            operator="o",
        ),
    ]
    async with aio_channel(f"127.0.0.1:{stack.ledger.grpc.port}") as channel:
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        for request in bad:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await ledger.RecordStripeSnapshot(request)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request.snapshot_id
        first = await ledger.RecordStripeSnapshot(good)
        again = await ledger.RecordStripeSnapshot(good)
        assert first.created and not again.created
        assert first.object_id == sub["id"] and first.object_type == "subscription"


async def test_keyed_known_objects(stack: DriftStack) -> None:
    """The ledger's keyed "which of these ids do you know" read (the audit's lookups):
    known ids come back, unknown ones do not, and too many ids are INVALID_ARGUMENT."""
    from billing.ledger.v1 import drift_inputs_pb2, ledger_pb2_grpc

    from services.common.grpc_client import aio_channel

    await stack.deliver()
    await stack.settled()
    invoices = sorted(stack.sim.world.objects["invoice"])[:3]
    asked = [*invoices, "in_not_a_known_invoice"]
    async with aio_channel(f"127.0.0.1:{stack.ledger.grpc.port}") as channel:
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        request = drift_inputs_pb2.StreamKnownObjectsRequest(kind="invoice", ids=asked)
        known = [i async for batch in ledger.StreamKnownObjects(request) for i in batch.ids]
        assert sorted(known) == invoices
        too_many = drift_inputs_pb2.StreamKnownObjectsRequest(
            kind="invoice", ids=[f"in_{n}" for n in range(10_001)]
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in ledger.StreamKnownObjects(too_many):
                pass
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_keyed_and_dated_subscription_states(stack: DriftStack) -> None:
    """Reads of a whole-account pass: the states of one page's subscriptions by id (unknown
    ids absent, too many refused) and every subscription's date without the joins."""
    from billing.ledger.v1 import drift_inputs_pb2, ledger_pb2_grpc

    from services.common.grpc_client import aio_channel

    await stack.deliver()
    await stack.settled()
    subs = sorted(stack.sim.world.objects["subscription"])
    async with aio_channel(f"127.0.0.1:{stack.ledger.grpc.port}") as channel:
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        keyed = drift_inputs_pb2.StreamSubscriptionStatesRequest(
            subscription_ids=[subs[0], subs[-1], "sub_not_known"]
        )
        states = [s async for batch in ledger.StreamSubscriptionStates(keyed) for s in batch.states]
        assert sorted(s.subscription_id for s in states) == [subs[0], subs[-1]]
        assert all(s.status and s.stripe_customer_id for s in states)
        dated = drift_inputs_pb2.StreamSubscriptionStatesRequest(created_only=True, batch_size=3)
        dates = [s async for batch in ledger.StreamSubscriptionStates(dated) for s in batch.states]
        assert sorted(s.subscription_id for s in dates) == subs
        assert all(s.HasField("subscription_created") and not s.status for s in dates)
        too_many = drift_inputs_pb2.StreamSubscriptionStatesRequest(
            subscription_ids=[f"sub_{n}" for n in range(10_001)]
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in ledger.StreamSubscriptionStates(too_many):
                pass
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
