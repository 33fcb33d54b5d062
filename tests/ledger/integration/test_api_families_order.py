"""Property: a world mixing every API version family, endpoint upgrades mid-life and a version
newer than every family (its Warning records included) still gives the same ledger in any
delivery order (the harness of ``test_order_independence``, on real PostgreSQL)."""

from __future__ import annotations

import random
import secrets

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.config import libpq_url
from services.ledger.verify import create_scratch_schema
from services.stripe_simulator import (
    CLOVER_VERSION,
    DEMO_API_VERSIONS,
    ENDIVE_VERSION,
    WorldConfig,
    generate_world,
)
from tests.ledger.integration.ledger_helpers import snapshot
from tests.ledger.integration.test_order_independence import deliver_chaotically, deliver_in_order

pytestmark = pytest.mark.integration

LATER_VERSION = "2027-03-31.fig"


def mixed_world(seed: int, tenants: int, months: int) -> list[bytes]:
    config = WorldConfig(
        seed=seed,
        tenants=tenants,
        months=months,
        api_versions=(*DEMO_API_VERSIONS, (LATER_VERSION, 1)),
        spread_versions=True,
        api_version_upgrades=((CLOVER_VERSION, ENDIVE_VERSION, 0.5),),
    )
    return [body for _, body in generate_world(config).event_bodies()]


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(min_value=1, max_value=50_000),
    tenants=st.integers(min_value=10, max_value=16),
    months=st.integers(min_value=2, max_value=4),
    chaos=st.integers(min_value=0, max_value=2**32 - 1),
)
async def test_mixed_families_give_the_same_ledger_in_any_order(
    database_url: str, seed: int, tenants: int, months: int, chaos: int
) -> None:
    bodies = mixed_world(seed, tenants, months)
    ordered = f"ledger_fam_{secrets.token_hex(4)}"
    shuffled = f"ledger_fam_{secrets.token_hex(4)}"
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
        async with conn.transaction():
            await create_scratch_schema(conn, ordered)
            await create_scratch_schema(conn, shuffled)
        try:
            await deliver_in_order(conn, ordered, bodies)
            await deliver_chaotically(conn, shuffled, bodies, random.Random(chaos))
            expected = await snapshot(conn, ordered)
            actual = await snapshot(conn, shuffled)
        finally:
            async with conn.transaction():
                await conn.execute(f"DROP SCHEMA {ordered} CASCADE")
                await conn.execute(f"DROP SCHEMA {shuffled} CASCADE")
    versions = {row[-1] for row in expected["billing_events"]}
    assert {v for v, _ in DEMO_API_VERSIONS} <= versions  # every family is in the ledger
    warnings = expected["unsupported_events"]
    assert warnings and all(row[-2:] == ("Warning", "endive") for row in warnings)
    for table in expected:
        assert actual[table] == expected[table], table
