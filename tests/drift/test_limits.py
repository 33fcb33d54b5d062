"""Stripe's limits: 429 and 5xx storms, the shared request budget, and unrecoverable gaps."""

from __future__ import annotations

import time
from typing import Any

import pytest
from billing.drift.v1 import drift_pb2, drift_pb2_grpc

from services.common.grpc_client import aio_channel
from tests.drift.conftest import DriftStack

pytestmark = pytest.mark.integration


async def test_storms_finish_correctly_within_budget(make_stack: Any) -> None:
    stack: DriftStack = await make_stack(max_rps=40.0)
    await stack.deliver()
    await stack.settled()
    await stack.post_sim(
        "/_sim/faults",
        {"api": {"seed": 3, "error_429_rate": 0.3, "error_5xx_rate": 0.2}},
    )
    stats_before = stack.sim.app.stats["requests"]
    began = time.monotonic()
    async with aio_channel(stack.drift_addr) as channel:
        stub = drift_pb2_grpc.DriftServiceStub(channel)
        run = await stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
        elapsed = time.monotonic() - began
        made = stack.sim.app.stats["requests"] - stats_before
        assert run.status == "finished", run.error_message
        stats = stack.sim.app.stats
        assert stats["injected_429"] > 0 and stats["injected_5xx"] > 0, (stats, made)
        found = await stub.ListDiscrepancies(drift_pb2.ListDiscrepanciesRequest())
        assert list(found.discrepancies) == []
    # Drift's requests (ingest's recovery made none: nothing was missing) within the budget:
    # the bucket starts with a burst of 10, then 40 per second.
    assert made == run.stripe_requests
    assert made <= 10 + 40 * elapsed + 1


async def test_old_gap_is_unrecoverable(make_stack: Any) -> None:
    stack: DriftStack = await make_stack()
    world = stack.sim.world
    now = stack.sim.app.now
    old_sub = next(
        s
        for s in world.objects["subscription"].values()
        if s["created"] < now - 40 * 86_400 and s["status"] in ("active", "past_due")
    )
    await stack.post_sim("/_sim/suppress", {"object_id": old_sub["id"]})
    await stack.deliver()
    await stack.settled()
    async with aio_channel(stack.drift_addr) as channel:
        stub = drift_pb2_grpc.DriftServiceStub(channel)
        await stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
        found = await stub.ListDiscrepancies(
            drift_pb2.ListDiscrepanciesRequest(subscription_id=old_sub["id"])
        )
        kinds = {(d.kind, d.field) for d in found.discrepancies}
        assert ("MissingHistoricalEventUnrecoverable", "subscription") in kinds
        account = found.discrepancies[0].account_id
        synced = await stub.SyncAccount(drift_pb2.SyncAccountRequest(account_id=account))
        assert not synced.clean
        # The sync recovered the events still inside the window (the ledger knows the
        # subscription again); its older invoices stay unrecoverable: the cutoff's case.
        assert synced.unrecoverable_subscription_ids == [old_sub["id"]]
        assert {d.kind for d in synced.remaining} == {"MissingHistoricalEventUnrecoverable"}


async def test_worker_runs_scheduled_passes(make_stack: Any) -> None:
    stack: DriftStack = await make_stack(interval=1.0)
    await stack.deliver()
    await stack.settled()
    async with aio_channel(stack.drift_addr) as channel:
        stub = drift_pb2_grpc.DriftServiceStub(channel)

        async def scheduled() -> list[Any]:
            runs = await stub.ListDriftRuns(drift_pb2.ListDriftRunsRequest())
            return [r for r in runs.runs if r.trigger == "schedule" and r.status == "finished"]

        from tests.helpers import eventually

        done = await eventually(scheduled, attempts=600, pause=0.1)
        assert done[0].scope == "all" and done[0].stripe_requests > 0


async def test_worker_idle_without_stripe(make_stack: Any) -> None:
    stack: DriftStack = await make_stack(interval=0.2, stripe_configured=False)
    assert stack.drift.worker is not None and not stack.drift.worker.enabled
