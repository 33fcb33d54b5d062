"""ExtraEvent (archived, unknown to Stripe) is found by every pass, not only the first one:
a regular pass compares the archive with events.list over the events since its mark."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest
from billing.drift.v1 import drift_pb2, drift_pb2_grpc

from services.common.grpc_client import aio_channel
from services.stripe_simulator.signing import sign
from tests.drift.conftest import DriftStack
from tests.ingest.conftest import SECRET

pytestmark = pytest.mark.integration


async def post_forged_event(stack: DriftStack, event_id: str) -> dict[str, Any]:
    """A correctly signed webhook of an event Stripe never created: a copy of the newest
    customer event under a new id (the archive takes it; Stripe's events.list never lists
    it). Same object state, so the ledger's view does not change."""
    newest = max(ev["created"] for ev in stack.sim.world.events)
    template = next(
        ev for ev in reversed(stack.sim.world.events) if ev["type"] == "customer.updated"
    )
    forged = {**template, "id": event_id, "created": newest}
    body = json.dumps(forged).encode()
    url = f"http://127.0.0.1:{stack.ingest.http_port}/webhooks/stripe"
    headers = {"Stripe-Signature": sign(body, SECRET, int(time.time()))}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
    return forged


async def open_kinds(stub: Any) -> list[tuple[str, str]]:
    found = await stub.ListDiscrepancies(drift_pb2.ListDiscrepanciesRequest(page_size=100))
    return sorted((d.kind, d.stripe_event_id) for d in found.discrepancies)


async def test_regular_passes_find_extra_events(stack: DriftStack) -> None:
    async with aio_channel(stack.drift_addr) as channel:
        stub = drift_pb2_grpc.DriftServiceStub(channel)
        first = await stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
        assert first.status == "finished" and await open_kinds(stub) == []
        await post_forged_event(stack, "evt_forged_incremental_01")
        await stack.settled()
        quick = await stub.RunDriftPass(drift_pb2.RunDriftPassRequest(incremental=True))
        assert quick.status == "finished", quick.error_message
        assert await open_kinds(stub) == [("ExtraEvent", "evt_forged_incremental_01")]
        await post_forged_event(stack, "evt_forged_regular_0002")
        await stack.settled()
        full = await stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
        assert full.status == "finished", full.error_message
        # The second pass after the mark finds the new one and keeps the first open (an
        # archived event does not stop being extra because a pass looked elsewhere).
        assert await open_kinds(stub) == [
            ("ExtraEvent", "evt_forged_incremental_01"),
            ("ExtraEvent", "evt_forged_regular_0002"),
        ]
