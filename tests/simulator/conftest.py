"""Shared fixtures of the simulator tests: one small world reused by the read-only tests."""

from __future__ import annotations

import pytest

from services.stripe_simulator import World, WorldConfig, generate_world
from services.stripe_simulator.scenarios import SCENARIOS

#: Two customers per scenario (one per API family), plus a few more for variety.
SMALL = WorldConfig(seed=7, tenants=2 * len(SCENARIOS) + 6, months=7)


@pytest.fixture(scope="session")
def small_world() -> World:
    """A world covering every scenario in both API version families."""
    return generate_world(SMALL)
