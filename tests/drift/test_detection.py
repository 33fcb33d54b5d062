"""Detection end to end: a clean world is clean; dropped, altered and silent changes are not."""

from __future__ import annotations

from typing import Any

import pytest
from billing.drift.v1 import drift_pb2

from tests.drift.conftest import DriftStack
from tests.helpers import query

pytestmark = pytest.mark.integration


async def open_discrepancies(stub: Any, **filters: Any) -> list[drift_pb2.Discrepancy]:
    response = await stub.ListDiscrepancies(
        drift_pb2.ListDiscrepanciesRequest(page_size=500, **filters)
    )
    return list(response.discrepancies)


async def test_clean_world_has_no_discrepancies(stack: DriftStack, drift_stub: Any) -> None:
    run = await drift_stub.RunDriftPass(drift_pb2.RunDriftPassRequest(operator="test"))
    found = await open_discrepancies(drift_stub)
    assert run.status == "finished", run.error_message
    assert found == [], [
        (d.kind, d.subscription_id, d.field, d.ledger_value, d.stripe_value) for d in found[:10]
    ]
    assert run.subscriptions_checked == run.subscriptions_total > 0
    assert run.stripe_requests > 0 and run.events_recovered == 0
    listed = await drift_stub.ListDriftRuns(drift_pb2.ListDriftRunsRequest())
    assert [r.id for r in listed.runs] == [run.id]


async def test_dropped_webhooks_are_recovered(make_stack: Any) -> None:
    stack: DriftStack = await make_stack()
    recent = [ev["id"] for ev in stack.sim.world.events[-40:]][::8]
    await stack.post_sim("/_sim/suppress", {"event_ids": recent})
    await stack.deliver()
    await stack.settled()
    from billing.drift.v1 import drift_pb2_grpc

    from services.common.grpc_client import aio_channel

    async with aio_channel(stack.drift_addr) as channel:
        stub = drift_pb2_grpc.DriftServiceStub(channel)
        run = await stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
        assert run.events_recovered == len(recent)
        rows = query(
            stack.database_url,
            "SELECT event_id, recovery_source FROM ingest.stripe_events WHERE event_id = ANY(%s)",
            (recent,),
        )
        assert {r[0] for r in rows} == set(recent)
        assert {r[1] for r in rows} == {"events_list"}
        missing = await open_discrepancies(stub, kind="MissingEvent")
        assert {d.stripe_event_id for d in missing} == set(recent)
        await stack.settled()
        again = await stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
        assert again.events_recovered == 0
        left = await open_discrepancies(stub)
        assert left == [], [(d.kind, d.field, d.stripe_object_id, d.detail) for d in left[:8]]


def active_subscription(stack: DriftStack) -> dict[str, Any]:
    subs = stack.sim.world.objects["subscription"].values()
    return next(s for s in subs if s["status"] == "active" and not s["cancel_at_period_end"])


async def test_silent_change_is_a_mismatch_cleared_by_sync(
    stack: DriftStack, drift_stub: Any
) -> None:
    sub = active_subscription(stack)
    quantity = sub["items"]["data"][0]["quantity"] + 3
    await stack.post_sim(f"/_sim/subscriptions/{sub['id']}/change", {"quantity": quantity})
    run = await drift_stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
    mismatches = await open_discrepancies(drift_stub, kind="SubscriptionStateMismatch")
    assert [(d.subscription_id, d.field, d.stripe_value) for d in mismatches] == [
        (sub["id"], "quantity", str(quantity))
    ]
    assert mismatches[0].severity == "Critical" and mismatches[0].account_id
    assert run.events_recovered == 1
    account = mismatches[0].account_id
    summary = await drift_stub.GetDataQualitySummary(drift_pb2.GetDataQualitySummaryRequest())
    assert summary.accounts_with_drift == 1 and list(summary.drift_account_ids) == [account]
    synced = await drift_stub.SyncAccount(
        drift_pb2.SyncAccountRequest(account_id=account, operator="ops")
    )
    assert synced.clean, [(d.kind, d.field) for d in synced.remaining]
    assert await open_discrepancies(drift_stub) == []
    everything = await open_discrepancies(drift_stub, include_resolved=True)
    assert {d.kind for d in everything} == {"SubscriptionStateMismatch", "MissingEvent"}
    assert all(d.HasField("resolved_at") for d in everything)
    summary = await drift_stub.GetDataQualitySummary(drift_pb2.GetDataQualitySummaryRequest())
    assert summary.accounts_with_drift == 0


async def test_change_with_no_event_stays_until_acknowledged(
    stack: DriftStack, drift_stub: Any
) -> None:
    sub = active_subscription(stack)
    await stack.post_sim(
        f"/_sim/subscriptions/{sub['id']}/change", {"cancel_at_period_end": True, "event": False}
    )
    await drift_stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
    found = await open_discrepancies(drift_stub)
    assert [(d.kind, d.field) for d in found] == [
        ("SubscriptionStateMismatch", "cancel_at_period_end")
    ]
    account = found[0].account_id
    synced = await drift_stub.SyncAccount(drift_pb2.SyncAccountRequest(account_id=account))
    assert not synced.clean and synced.events_appended == 0
    ack = await drift_stub.AcknowledgeDrift(
        drift_pb2.AcknowledgeDriftRequest(account_id=account, operator="ops", note="known")
    )
    assert ack.acknowledged == 1
    assert await open_discrepancies(drift_stub) == []
    kept = await open_discrepancies(drift_stub, include_acknowledged=True)
    assert [(d.acknowledged_by, d.acknowledgement_note) for d in kept] == [("ops", "known")]
    summary = await drift_stub.GetDataQualitySummary(drift_pb2.GetDataQualitySummaryRequest())
    assert summary.accounts_with_drift == 0
    diagnostic = await drift_stub.GetCustomerDiagnostic(
        drift_pb2.GetCustomerDiagnosticRequest(account_id=account)
    )
    differing = [(f.section, f.field) for f in diagnostic.fields if f.differs]
    assert differing == [(f"subscription:{sub['id']}", "cancel_at_period_end")]


async def test_altered_redelivery_is_a_divergence(stack: DriftStack, drift_stub: Any) -> None:
    event = next(
        ev
        for ev in reversed(stack.sim.world.events)
        if ev["data"]["object"].get("object") == "subscription"
    )
    await stack.post_sim(f"/_sim/events/{event['id']}/redeliver", {"alter": True})
    await drift_stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
    found = await open_discrepancies(drift_stub)
    assert [(d.kind, d.stripe_event_id) for d in found] == [
        ("StripeEventPayloadDivergence", event["id"])
    ]
    assert found[0].subscription_id == event["data"]["object"]["id"]


async def test_incremental_pass_checks_what_changed(stack: DriftStack, drift_stub: Any) -> None:
    first = await drift_stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
    quiet = await drift_stub.RunDriftPass(drift_pb2.RunDriftPassRequest(incremental=True))
    assert quiet.subscriptions_checked < first.subscriptions_checked
    assert quiet.stripe_requests < first.stripe_requests
    sub = active_subscription(stack)
    await stack.post_sim(f"/_sim/subscriptions/{sub['id']}/change", {"quantity": 11})
    changed = await drift_stub.RunDriftPass(drift_pb2.RunDriftPassRequest(incremental=True))
    found = await open_discrepancies(drift_stub, kind="SubscriptionStateMismatch")
    assert [(d.subscription_id, d.field, d.stripe_value) for d in found] == [
        (sub["id"], "quantity", "11")
    ]
    assert found[0].account_id and changed.events_recovered == 1


async def test_new_discrepancies_are_published(stack: DriftStack, drift_stub: Any) -> None:
    import asyncio
    import json

    import nats as nats_client

    client = await nats_client.connect(stack.nats_url)
    received: list[dict[str, Any]] = []

    async def on_message(msg: Any) -> None:
        received.append(json.loads(msg.data))

    await client.subscribe("billing.drift.detected", cb=on_message)
    try:
        sub = active_subscription(stack)
        await stack.post_sim(
            f"/_sim/subscriptions/{sub['id']}/change", {"quantity": 13, "event": False}
        )
        await drift_stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
        await drift_stub.RunDriftPass(drift_pb2.RunDriftPassRequest())  # not new: not re-sent
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    finally:
        await client.close()
    assert [(m["kind"], m["subscription_id"], m["field"], m["stripe_value"]) for m in received] == [
        ("SubscriptionStateMismatch", sub["id"], "quantity", "13")
    ]
    assert received[0]["severity"] == "Critical" and received[0]["run_id"]
