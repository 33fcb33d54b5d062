"""A pass whose caller goes away half-way is recorded as failed, not finished, and decides
nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from billing.drift.v1 import drift_pb2, drift_pb2_grpc

from services.common.grpc_client import aio_channel
from tests.drift.conftest import DriftStack
from tests.helpers import eventually, query

pytestmark = pytest.mark.integration


async def test_a_cancelled_pass_is_recorded_failed(stack: DriftStack) -> None:
    sub = next(
        s
        for s in stack.sim.world.objects["subscription"].values()
        if s["status"] == "active" and not s["cancel_at_period_end"]
    )
    # A change with no event: the pass waits settle_seconds (1 s) before its recheck.
    await stack.post_sim(
        f"/_sim/subscriptions/{sub['id']}/change", {"quantity": 17, "event": False}
    )
    async with aio_channel(stack.drift_addr) as channel:
        stub = drift_pb2_grpc.DriftServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RunDriftPass(drift_pb2.RunDriftPassRequest(), timeout=0.8)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        async def recorded() -> list[Any]:
            runs = await stub.ListDriftRuns(drift_pb2.ListDriftRunsRequest())
            return [r for r in runs.runs if r.HasField("finished_at")]

        runs = await eventually(recorded, attempts=100, pause=0.1)
        assert [(r.status, r.error_message.split(":")[0]) for r in runs] == [
            ("failed", "CancelledError")
        ]
        await asyncio.sleep(0.5)
    assert query(stack.database_url, "SELECT count(*) FROM drift.subscription_checks") == [(0,)]
    assert query(stack.database_url, "SELECT count(*) FROM drift.discrepancies") == [(0,)]
