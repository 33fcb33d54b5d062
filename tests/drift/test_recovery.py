"""Disaster recovery and first install: snapshot rows of their own kind, covered by
VerifyLedger, never billing events; gaps before the cutoff stop being reported."""

from __future__ import annotations

from typing import Any

import pytest
from billing.drift.v1 import drift_pb2, drift_pb2_grpc
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from services.common.grpc_client import aio_channel
from tests.drift.conftest import DriftStack
from tests.helpers import query

pytestmark = pytest.mark.integration

DAY = 86_400


def any_active_subscription(stack: DriftStack) -> dict[str, Any]:
    subs = stack.sim.world.objects["subscription"].values()
    return next(s for s in subs if s["status"] == "active")


async def test_cutoff_seeds_the_ledger_from_a_snapshot(make_stack: Any) -> None:
    stack: DriftStack = await make_stack()
    old = any_active_subscription(stack)
    await stack.post_sim("/_sim/suppress", {"object_id": old["id"]})
    await stack.deliver()
    await stack.settled()
    stack.sim.advance(40 * DAY)  # every event of it is now older than events.list keeps
    async with aio_channel(stack.drift_addr) as channel:
        drift = drift_pb2_grpc.DriftServiceStub(channel)
        await drift.RunDriftPass(drift_pb2.RunDriftPassRequest())
        gaps = await drift.ListDiscrepancies(
            drift_pb2.ListDiscrepanciesRequest(subscription_id=old["id"])
        )
        assert gaps.discrepancies
        assert {d.kind for d in gaps.discrepancies} == {"MissingHistoricalEventUnrecoverable"}
        cut = await drift.SetRecoveryCutoff(
            drift_pb2.SetRecoveryCutoffRequest(
                subscription_id=old["id"], operator="ops", note="lost in the outage"
            )
        )
        assert cut.snapshot_id.startswith("cutoff:") and cut.discrepancies_resolved >= 1
        await drift.RunDriftPass(drift_pb2.RunDriftPassRequest())
        left = await drift.ListDiscrepancies(drift_pb2.ListDiscrepanciesRequest())
        assert [(d.kind, d.field, d.ledger_value, d.stripe_value) for d in left.discrepancies] == []
    rows = query(
        stack.database_url,
        "SELECT state_event_id FROM ledger.subscriptions WHERE subscription_id = %s",
        (old["id"],),
    )
    assert rows and rows[0][0] == f"snapshot:{cut.snapshot_id}"
    assert query(
        stack.database_url,
        "SELECT count(*) FROM ledger.billing_events WHERE stripe_event_id LIKE 'snapshot:%%'",
    ) == [(0,)]
    assert query(
        stack.database_url,
        "SELECT kind, operator, note FROM ledger.stripe_snapshots WHERE object_id = %s",
        (old["id"],),
    ) == [("cutoff", "ops", "lost in the outage")]
    async with aio_channel(f"127.0.0.1:{stack.ledger.grpc.port}") as channel:
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        verified = await ledger.VerifyLedger(ledger_pb2.VerifyLedgerRequest())
        assert verified.mismatches == 0, verified.sample


async def test_first_install_import(make_stack: Any) -> None:
    stack: DriftStack = await make_stack()
    async with aio_channel(stack.drift_addr) as channel:
        drift = drift_pb2_grpc.DriftServiceStub(channel)
        first = await drift.ImportBaseline(drift_pb2.ImportBaselineRequest(operator="install"))
        assert first.events_recovered > 0 and first.subscriptions_baselined > 0
        await stack.settled()
        run = await drift.RunDriftPass(drift_pb2.RunDriftPassRequest())
        left = await drift.ListDiscrepancies(drift_pb2.ListDiscrepanciesRequest(page_size=20))
        assert run.status == "finished"
        assert [(d.kind, d.field, d.stripe_object_id) for d in left.discrepancies] == []
        again = await drift.ImportBaseline(drift_pb2.ImportBaselineRequest(operator="install"))
        assert again.subscriptions_baselined == 0 and again.events_recovered == 0
        assert again.already_done == first.subscriptions_baselined
