"""Property: the ledger is a pure function of the archive (DESIGN.md section 3.4).

For generated simulator histories, any shuffle of the deliveries, with duplicates, with a
consumer killed mid-batch (part of a batch applied in a transaction that never commits, then
the whole batch redelivered) and with batches redelivered after their commit (killed between
commit and ack), yields exactly the same billing_events rows (every column except id and
created_at) and the same read models as the in-order delivery; and the read-side query_*
tables, maintained by their triggers during such a delivery into the live schema, are exactly
what the query functions compute from those tables.

Each example projects into two scratch schemas built ``LIKE`` the live ledger tables (same
columns, constraints and indexes) with the same projection code the consumer runs, so the
examples stay fast and independent.
"""

from __future__ import annotations

import random
import secrets
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.config import libpq_url
from services.ledger.projection import apply_batch
from services.ledger.tables import REBUILT_TABLES
from services.ledger.verify import (
    QUERY_TABLES,
    VerifyReport,
    create_scratch_schema,
    verify_query_tables,
)
from tests.ledger.integration.ledger_helpers import billing_event_ids, snapshot, world_bodies

pytestmark = pytest.mark.integration


class Killed(Exception):
    """The consumer died before committing."""


async def deliver_in_order(
    conn: psycopg.AsyncConnection[Any], schema: str, bodies: list[bytes]
) -> None:
    for start in range(0, len(bodies), 100):
        async with conn.transaction():
            await apply_batch(conn, bodies[start : start + 100], schema=schema)


async def deliver_chaotically(
    conn: psycopg.AsyncConnection[Any], schema: str, bodies: list[bytes], rng: random.Random
) -> None:
    deliveries = list(bodies)
    deliveries += rng.sample(bodies, k=rng.randint(0, len(bodies) // 3))  # duplicates
    rng.shuffle(deliveries)
    position = 0
    while position < len(deliveries):
        size = rng.randint(1, 64)
        batch = deliveries[position : position + size]
        if rng.random() < 0.25:  # killed mid-batch: nothing commits, the batch comes back
            cut = rng.randint(0, len(batch))
            try:
                async with conn.transaction():
                    await apply_batch(conn, batch[:cut], schema=schema)
                    raise Killed
            except Killed:
                pass
        async with conn.transaction():
            await apply_batch(conn, batch, schema=schema)
        if rng.random() < 0.15:  # killed after commit, before the acks: redelivered
            async with conn.transaction():
                await apply_batch(conn, batch, schema=schema)
        position += size


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(min_value=1, max_value=50_000),
    tenants=st.integers(min_value=2, max_value=6),
    months=st.integers(min_value=2, max_value=5),
    chaos=st.integers(min_value=0, max_value=2**32 - 1),
)
async def test_any_delivery_order_gives_the_same_ledger(
    database_url: str, seed: int, tenants: int, months: int, chaos: int
) -> None:
    bodies = [body for _, body in world_bodies(seed, tenants, months)]
    ordered = f"ledger_prop_{secrets.token_hex(4)}"
    shuffled = f"ledger_prop_{secrets.token_hex(4)}"
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
    # The comparison must be about something: every billing event is there, read models too.
    must_have = billing_event_ids(world_bodies(seed, tenants, months))
    assert len(expected["billing_events"]) == len(must_have)
    assert expected["subscriptions"] and expected["accounts"] and expected["payments"]
    for table in expected:
        assert actual[table] == expected[table], table


async def _empty_live_ledger(conn: psycopg.AsyncConnection[Any]) -> None:
    """Empty the live ledger tables between examples (the guard triggers are bypassed for
    this session only, as a restore from backup would)."""
    tables = [t for t, _, _ in REBUILT_TABLES] + list(QUERY_TABLES)
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("TRUNCATE " + ", ".join(f"ledger.{t}" for t in tables))


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(min_value=1, max_value=50_000),
    tenants=st.integers(min_value=2, max_value=5),
    months=st.integers(min_value=2, max_value=4),
    chaos=st.integers(min_value=0, max_value=2**32 - 1),
)
async def test_any_delivery_order_gives_the_same_query_tables(
    database_url: str, seed: int, tenants: int, months: int, chaos: int
) -> None:
    """The query_* tables, maintained incrementally by their triggers while the live ledger
    is fed in any order (duplicates, killed batches), equal what the query functions compute
    from the resulting source tables, which equal the in-order ledger's."""
    bodies = [body for _, body in world_bodies(seed, tenants, months)]
    ordered = f"ledger_prop_{secrets.token_hex(4)}"
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
        await _empty_live_ledger(conn)
        async with conn.transaction():
            await create_scratch_schema(conn, ordered)
        try:
            await deliver_in_order(conn, ordered, bodies)
            await deliver_chaotically(conn, "ledger", bodies, random.Random(chaos))
            expected = await snapshot(conn, ordered)
            actual = await snapshot(conn, "ledger")
            report = VerifyReport()
            async with conn.transaction():
                await verify_query_tables(conn, report, sample_size=5)
            cur = await conn.execute("SELECT count(*) FROM ledger.query_mrr_steps")
            steps = await cur.fetchone()
        finally:
            async with conn.transaction():
                await conn.execute(f"DROP SCHEMA {ordered} CASCADE")
    for table in expected:
        assert actual[table] == expected[table], table
    assert set(report.by_table) == set(QUERY_TABLES)
    assert report.mismatches == 0, report.sample
    assert steps is not None and steps[0] > 0  # the comparison is about something
