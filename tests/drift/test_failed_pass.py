"""A pass that dies half-way decides nothing: the previous check state stays as it was, and
the run is recorded as failed with its error."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from billing.drift.v1 import drift_pb2, drift_pb2_grpc

from services.common.grpc_client import aio_channel
from services.stripe_simulator import generate_world
from services.stripe_simulator.faults import ApiFaults, FaultInjector
from services.stripe_simulator.server import ServerSettings, SimulatorServer
from tests.drift.conftest import WORLD, DriftStack
from tests.helpers import query
from tests.ingest.conftest import SECRET

pytestmark = pytest.mark.integration


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    """A world of 250 subscriptions (three pages of Stripe's subscription list), with a seed
    of its own: no other test shares its event ids (NATS deduplicates them)."""
    settings = ServerSettings(auto_deliver=False, webhook_secret=SECRET)
    world = generate_world(replace(WORLD, seed=9001, tenants=250, months=1))
    with SimulatorServer(world, settings=settings) as server:
        yield server


class FailingAfter(FaultInjector):
    """The simulator answers ``ok`` more API requests normally, then 500 forever."""

    def __init__(self, ok: int) -> None:
        super().__init__(ApiFaults())
        self.ok = ok

    def decide(self) -> str | None:
        self.count += 1
        return "5xx" if self.count > self.ok else None


def check_state(stack: DriftStack) -> dict[str, Any]:
    return {
        "subscriptions": query(
            stack.database_url,
            "SELECT subscription_id, account_id, has_drift_detected, drift_checked_at,"
            " last_run_id FROM drift.subscription_checks ORDER BY subscription_id",
        ),
        "accounts": query(
            stack.database_url,
            "SELECT account_id, has_drift_detected, checked_at, synced_at"
            " FROM drift.accounts ORDER BY account_id",
        ),
        "marks": query(
            stack.database_url,
            "SELECT name, stripe_created FROM drift.high_water_marks ORDER BY name",
        ),
    }


async def test_a_pass_that_dies_half_way_leaves_the_checks_intact(make_stack: Any) -> None:
    stack: DriftStack = await make_stack()
    await stack.deliver()
    await stack.settled()
    caller = stack.drift.deps.caller
    assert caller is not None
    caller.max_attempts, caller.backoff_base = 2, 0.01  # give up fast on the 500s
    async with aio_channel(stack.drift_addr) as channel:
        stub = drift_pb2_grpc.DriftServiceStub(channel)
        first = await stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
        assert first.status == "finished", first.error_message
        good = await stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
        assert good.status == "finished", good.error_message
        before = check_state(stack)
        assert before["subscriptions"] and {r[4] for r in before["subscriptions"]} == {good.id}
        # A change with no event: the next pass compares every page, then retrieves that
        # subscription again to confirm (the recheck) - and Stripe fails for good right
        # there, after every list was read and every page compared.
        sub = next(
            s
            for s in stack.sim.world.objects["subscription"].values()
            if s["status"] == "active" and not s["cancel_at_period_end"]
        )
        await stack.post_sim(
            f"/_sim/subscriptions/{sub['id']}/change", {"quantity": 41, "event": False}
        )
        stack.sim.app.faults = FailingAfter(good.stripe_requests)
        failed = await stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
        stack.sim.app.faults = FaultInjector(ApiFaults())
        assert failed.status == "failed"
        assert failed.error_message.startswith("StripeUnavailable"), failed.error_message
        assert failed.errors == 1 and failed.HasField("finished_at")
        assert failed.subscriptions_checked == good.subscriptions_checked == 250
        assert check_state(stack) == before
        runs = await stub.ListDriftRuns(drift_pb2.ListDriftRunsRequest())
        assert [(r.id, r.status) for r in runs.runs][:1] == [(failed.id, "failed")]
        found = await stub.ListDiscrepancies(drift_pb2.ListDiscrepanciesRequest())
        assert list(found.discrepancies) == []  # nothing was decided
        # The next good pass takes over from there.
        after = await stub.RunDriftPass(drift_pb2.RunDriftPassRequest())
        assert after.status == "finished", after.error_message
        rows = check_state(stack)["subscriptions"]
        assert len(rows) == len(before["subscriptions"]) and {r[4] for r in rows} == {after.id}
        assert [r[0] for r in rows if r[2]] == [sub["id"]]
