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
