"""Migration 0021: a projection batch refreshes each touched query_* row once, the same rows.

The query_on_* triggers still compute which accounts, subscriptions and invoices a statement
touches; in a transaction that sets ``ledger.query_defer`` (the projection's ``apply_staged``)
they only queue those ids, and one ``ledger.query_flush()`` per batch refreshes each once.
Proof of sameness on real PostgreSQL: the same random batches of a simulator world (shuffled,
with redeliveries) applied to two ledgers, one deferring and one refreshing per statement
as before 0021, give equal query_* tables at every checkpoint, and the deferring ledger
equals its own rebuild (VerifyLedger's query-table check: 0 mismatches). The deferring
ledger must also compute fewer refreshes (at most one per kind and batch), or deferral did
not happen. A deferring batch that never flushes is flushed at COMMIT by the queue's
deferred constraint trigger; a rolled-back first batch (which created the session's queue)
does not break the next one. 0021 downgrades to 0020's triggers and upgrades again.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import psycopg
import pytest
from alembic import command
from psycopg import sql

from services.common.config import libpq_url
from services.common.migrate import alembic_config, upgrade_to_head
from services.ledger.effects import project_event
from services.ledger.projection import apply_staged, merge_effects, stage_merged
from tests.ledger.integration.ledger_helpers import world_bodies
from tests.ledger.queries.conftest import Ledger, days_ago
from tests.ledger.queries.test_live_refresh import _verify
from tests.servers import unique_name

pytestmark = pytest.mark.integration

REFRESHES = ("query_refresh_accounts", "query_refresh_mrr", "query_refresh_invoices")


def _batches(seed: int) -> list[list[bytes]]:
    """A world's events shuffled, some delivered twice, cut into batches of random sizes."""
    rng = random.Random(seed)
    bodies = [body for _, body in world_bodies(11, 42, 5)]
    rng.shuffle(bodies)
    for _ in range(len(bodies) // 20):  # redeliveries, later than the first delivery
        at = rng.randrange(len(bodies))
        bodies.insert(rng.randrange(at, len(bodies) + 1), bodies[at])
    out: list[list[bytes]] = []
    while bodies:
        size = rng.choice((1, 3, 17, 60, 150, 400))
        out.append(bodies[:size])
        bodies = bodies[size:]
    return out


def _snapshot(url: str) -> dict[str, list[str]]:
    """Every query_* table of the ledger, rows as text, sorted."""
    with psycopg.connect(libpq_url(url)) as conn:
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'ledger'"
                " AND tablename LIKE 'query%%' ORDER BY 1"
            ).fetchall()
        ]
        return {
            table: [
                str(r[0])
                for r in conn.execute(
                    sql.SQL("SELECT t::text FROM ledger.{} t ORDER BY 1").format(
                        sql.Identifier(table)
                    )
                ).fetchall()
            ]
            for table in tables
        }


async def _calls(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    """Calls of each refresh counted by this session and not yet reported to the statistics
    (track_functions = 'pl'): this transaction's, and perhaps earlier ones' (PostgreSQL 15+
    reports pending counts at most once a second), so callers take differences."""
    out = {}
    for name in REFRESHES:
        cur = await conn.execute(
            "SELECT pg_stat_get_xact_function_calls(%s::regproc)", (f"ledger.{name}",)
        )
        row = await cur.fetchone()
        out[name] = int(row[0] or 0) if row else 0
    return out


async def _queued(conn: psycopg.AsyncConnection[Any]) -> int:
    """Queue rows (calls of query_touch that deferred) of this session not yet flushed."""
    cur = await conn.execute("SELECT to_regclass('pg_temp.query_touches') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = await conn.execute("SELECT count(*) FROM pg_temp.query_touches")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _apply(
    url: str, batches: list[list[bytes]], *, defer: bool, flush: bool = True
) -> dict[str, Any]:
    """Apply ``batches``, each in its own transaction, through the projection's writer:
    ``defer`` as apply_staged does by default; ``flush=False`` defers (the setting, set by
    hand) without apply_staged's flush, leaving the queue to COMMIT. Returns the refresh
    calls summed over the batches, the most of one kind in one batch, and how many batches
    still had ids queued when they committed."""
    totals = dict.fromkeys(REFRESHES, 0)
    most = 0
    queued_at_commit = 0
    async with await psycopg.AsyncConnection.connect(libpq_url(url)) as conn:
        await conn.execute("SET track_functions = 'pl'")
        for batch in batches:
            staged = stage_merged(merge_effects(project_event(body) for body in batch))
            async with conn.transaction():
                if not flush:
                    await conn.execute("SELECT set_config('ledger.query_defer', 'on', true)")
                before = await _calls(conn)  # pending counts may hold earlier transactions'
                await apply_staged(conn, staged, len(batch), defer_queries=defer and flush)
                calls = {name: n - before[name] for name, n in (await _calls(conn)).items()}
                if not flush:
                    queued_at_commit += 1 if await _queued(conn) else 0
            for name, n in calls.items():
                totals[name] += n
                most = max(most, n)
    return {"calls": totals, "most": most, "queued_at_commit": queued_at_commit}


def _second_ledger(pg: Any) -> str:
    url: str = pg.create_database(unique_name("immediate"))
    upgrade_to_head(url)
    return url


@pytest.mark.parametrize("seed", [3, 4])
def test_deferred_batches_write_the_same_query_tables(
    pg: Any, database_url: str, seed: int
) -> None:
    immediate_url = _second_ledger(pg)
    batches = _batches(seed)
    thirds = [
        batches[: len(batches) // 3],
        batches[len(batches) // 3 : 2 * len(batches) // 3],
        batches[2 * len(batches) // 3 :],
    ]
    deferred_calls = dict.fromkeys(REFRESHES, 0)
    immediate_calls = dict.fromkeys(REFRESHES, 0)
    for part in thirds:
        deferred = asyncio.run(_apply(database_url, part, defer=True))
        immediate = asyncio.run(_apply(immediate_url, part, defer=False))
        assert deferred["most"] <= 1  # one flush per batch: each refresh once at most
        for name in REFRESHES:
            deferred_calls[name] += deferred["calls"][name]
            immediate_calls[name] += immediate["calls"][name]
        live = _snapshot(database_url)
        assert live == _snapshot(immediate_url)
        assert sum(len(rows) for rows in live.values()) > 0
        report = asyncio.run(_verify(database_url))
        assert report.mismatches == 0, report.sample
    # deferral happened: fewer account and invoice refreshes than one per statement
    assert deferred_calls["query_refresh_accounts"] < immediate_calls["query_refresh_accounts"]
    assert deferred_calls["query_refresh_invoices"] < immediate_calls["query_refresh_invoices"]
    assert deferred_calls["query_refresh_accounts"] <= len(batches)


def test_a_deferring_batch_without_its_flush_is_flushed_at_commit(
    pg: Any, database_url: str
) -> None:
    immediate_url = _second_ledger(pg)
    batches = _batches(5)[:12]

    async def rolled_back_first() -> None:
        # the session's queue table is created inside a transaction that rolls back
        async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
            staged = stage_merged(merge_effects(project_event(b) for b in batches[0]))
            async with conn.transaction(force_rollback=True):
                await conn.execute("SELECT set_config('ledger.query_defer', 'on', true)")
                await apply_staged(conn, staged, len(batches[0]), defer_queries=False)
                assert await _queued(conn) > 0
            cur = await conn.execute("SELECT to_regclass('pg_temp.query_touches')")
            assert await cur.fetchone() == (None,)
            cur = await conn.execute("SELECT count(*) FROM ledger.query_accounts")
            assert await cur.fetchone() == (0,)

    asyncio.run(rolled_back_first())
    result = asyncio.run(_apply(database_url, batches, defer=True, flush=False))
    asyncio.run(_apply(immediate_url, batches, defer=False))
    assert result["queued_at_commit"] > 0  # the flush was left to COMMIT
    assert result["calls"]["query_refresh_accounts"] == 0  # nothing refreshed before it
    assert _snapshot(database_url) == _snapshot(immediate_url)
    report = asyncio.run(_verify(database_url))
    assert report.mismatches == 0, report.sample


def test_writers_that_do_not_defer_refresh_at_once(ledger: Ledger) -> None:
    with psycopg.connect(libpq_url(ledger.url)) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO ledger.accounts (stripe_customer_id, name, currency, stripe_created_at,"
            " state_event_created, state_event_id)"
            " VALUES ('cus_now', 'Now', 'USD', %s, %s, 'evt_now')",
            (days_ago(3), days_ago(3)),
        )
        row = conn.execute(
            "SELECT name FROM ledger.query_accounts WHERE account_id = 'cus_now'"
        ).fetchone()
        assert row == ("Now",)  # in the same transaction, before any flush
        assert conn.execute("SELECT to_regclass('pg_temp.query_touches')").fetchone() == (None,)
    with (
        psycopg.connect(libpq_url(ledger.url)) as conn,
        pytest.raises(psycopg.errors.RaiseException),
    ):
        conn.execute("SELECT set_config('ledger.query_defer', 'on', false)")
        conn.execute("SELECT ledger.query_touch('nonsense', '{x}')")


def test_0021_downgrades_to_the_0020_triggers_and_back(database_url: str) -> None:
    config = alembic_config(database_url)
    ledger = Ledger(database_url)

    def body() -> str:
        rows = ledger.execute(
            "SELECT pg_get_functiondef('ledger.query_on_subscriptions()'::regprocedure)"
        )
        return str(rows[0][0])

    head = body()
    assert "ledger.query_touch('accounts'" in head
    command.downgrade(config, "0020_live_statements")
    assert "PERFORM ledger.query_refresh_accounts(ledger.query_account_ids" in body()
    assert ledger.execute("SELECT to_regproc('ledger.query_flush')") == [(None,)]
    ledger.customer("cus_down", name="Down", created_at=days_ago(2))
    assert ledger.execute(
        "SELECT name FROM ledger.query_accounts WHERE account_id = 'cus_down'"
    ) == [("Down",)]
    upgrade_to_head(database_url)
    assert body() == head
    assert ledger.execute("SELECT to_regproc('ledger.query_flush')") == [("ledger.query_flush",)]
