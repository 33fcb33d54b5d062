"""Walking one Stripe list in ``created`` slices side by side (the full pass's subscription
list): the slices partition the time line, and together they list exactly what one cursor
lists, through the real ``stripe`` client against the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from services.drift.stripe_calls import StripeCaller, TokenBucket, created_slices
from services.stripe_simulator import WorldConfig, generate_world
from services.stripe_simulator.listing import CreatedBounds
from services.stripe_simulator.server import ServerSettings, SimulatorServer


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    world = generate_world(WorldConfig(seed=13, tenants=50, months=3))
    with SimulatorServer(world, settings=ServerSettings(auto_deliver=False)) as server:
        yield server


def _caller(url: str) -> StripeCaller:
    client = stripe.StripeClient(
        "sk_test_pages", base_addresses={"api": url}, max_network_retries=0
    )
    return StripeCaller(client, TokenBucket(1000.0), concurrency=4)


def test_slices_partition_the_time_line() -> None:
    times = [1000 + 7 * i for i in range(400)]
    slices = created_slices(times, 5, min_per_part=10)
    assert len(slices) == 5
    bounds = [CreatedBounds.of(s["created"]) for s in slices]
    assert bounds[0].floor is None and bounds[-1].ceiling is None
    for t in [-5, 0, 999, *times, 10**10]:
        assert sum(t in b for b in bounds) == 1, t
    assert created_slices(times, 5, min_per_part=1000) == [{}], "few objects: one cursor"
    assert created_slices([], 8) == [{}]


async def test_side_by_side_lists_what_one_cursor_lists(sim: SimulatorServer) -> None:
    caller = _caller(sim.url)
    try:
        params = {"status": "all", "expand": ["data.latest_invoice"]}
        single = [s async for page in caller.pages("/v1/subscriptions", params) for s in page]
        created = [int(s["created"]) for s in sim.world.objects["subscription"].values()]
        queries = [{**params, **cut} for cut in created_slices(created, 4, min_per_part=5)]
        assert len(queries) == 4
        sliced = [
            s
            async for page in caller.pages_side_by_side("/v1/subscriptions", queries)
            for s in page
        ]
    finally:
        caller.close()
    assert sorted(s["id"] for s in sliced) == sorted(s["id"] for s in single)
    assert len(sliced) == len(sim.world.objects["subscription"])
    assert all(isinstance(s["latest_invoice"], dict) for s in sliced if s["latest_invoice"])


async def test_a_failing_slice_fails_the_list(sim: SimulatorServer) -> None:
    caller = _caller(sim.url)
    queries: list[dict[str, Any]] = [
        {"status": "all"},
        {"status": "all", "created": {"gte": "not-a-time"}},
    ]
    try:
        with pytest.raises(stripe.InvalidRequestError):
            async for _ in caller.pages_side_by_side("/v1/subscriptions", queries):
                pass
    finally:
        caller.close()
