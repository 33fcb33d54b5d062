"""The end of a bulk replay: billing_events is indexed and analyzed beside the derived refresh
(issue 12, sixth pass), and the ledger comes out whole either way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import grpc
import psycopg
import pytest

from services.common.config import libpq_url
from services.ledger import replay
from tests.ingest.conftest import WebhookClient
from tests.ledger.integration.conftest import post_all
from tests.ledger.integration.ledger_helpers import billing_event_ids
from tests.ledger.integration.test_replay_bulk_indexes import _records, _replay, _verify, _world


async def _indexes(db: psycopg.AsyncConnection[Any], table: str | None = None) -> dict[str, str]:
    """Index name -> definition in the ledger schema (of one table, if given)."""
    cur = await db.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'ledger'"
        " AND (%s::text IS NULL OR tablename = %s) ORDER BY 1",
        (table, table),
    )
    return {str(r[0]): str(r[1]) for r in await cur.fetchall()}


async def test_the_refresh_does_not_wait_for_billing_events_indexes(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    db: psycopg.AsyncConnection[Any],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lock held on billing_events holds its index builds back: the refresh must still run
    (it did not, while billing_events was built in the refresh's own first step)."""
    bodies = _world()
    await post_all(webhook_client, [b for _, b in bodies])
    before = await _indexes(db)
    billing_before = await _indexes(db, "billing_events")
    assert billing_before
    blocker = await psycopg.AsyncConnection.connect(libpq_url(database_url))
    refreshed = asyncio.Event()
    real_finish, real_refresh = replay._finish_deferral, replay.refresh_all_derived

    async def finish(engine: Any, steps: Any) -> None:
        # After the last batch: ROW EXCLUSIVE lets rows in but no index be built.
        await blocker.execute("LOCK TABLE ledger.billing_events IN ROW EXCLUSIVE MODE")
        await real_finish(engine, steps)

    async def refresh(cur: Any, schema: str = "ledger") -> None:
        refreshed.set()
        await real_refresh(cur, schema)

    monkeypatch.setattr(replay, "_finish_deferral", finish)
    monkeypatch.setattr(replay, "refresh_all_derived", refresh)
    service = await make_ledger(consume=False, replay_batch_size=50)
    call = asyncio.ensure_future(_replay(service.grpc.port))
    try:
        await asyncio.wait_for(refreshed.wait(), 60)
        # Refreshing while billing_events' secondary indexes are still to be built.
        assert set(await _indexes(db, "billing_events")) < set(billing_before)
    finally:
        await blocker.commit()  # the builds go on
        await blocker.close()
        answer = await call
    assert answer.applied == len(billing_event_ids(bodies))
    assert await _indexes(db) == before
    assert await _records(db) == []
    clean = await _verify(service.grpc.port)
    assert clean.mismatches == 0, clean.sample


async def test_a_refresh_that_fails_leaves_the_indexes_whole(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    db: psycopg.AsyncConnection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The failure path restores the indexes only after billing_events' own builds are done:
    every index is back, none twice, and the next replay finishes the ledger."""
    bodies = _world()
    await post_all(webhook_client, [b for _, b in bodies])
    before = await _indexes(db)
    real_refresh = replay.refresh_all_derived

    async def failing(cur: Any, schema: str = "ledger") -> None:
        await cur.execute("SELECT 1 / 0")  # a database error inside the refresh

    monkeypatch.setattr(replay, "refresh_all_derived", failing)
    service = await make_ledger(consume=False, replay_batch_size=50)
    with pytest.raises(grpc.aio.AioRpcError):
        await _replay(service.grpc.port)
    assert await _indexes(db) == before
    assert await _records(db) == []

    monkeypatch.setattr(replay, "refresh_all_derived", real_refresh)
    again = await _replay(service.grpc.port)  # the marker is still there: it finishes the job
    assert again.examined == len(bodies)
    assert await _indexes(db) == before
    clean = await _verify(service.grpc.port)
    assert clean.mismatches == 0, clean.sample


async def _deferred(db: psycopg.AsyncConnection[Any]) -> int:
    cur = await db.execute("SELECT count(*) FROM ledger.query_support_deferred")
    row = await cur.fetchone()
    return int(row[0]) if row else -1


async def test_the_rebuild_runs_its_parts_on_two_connections_with_the_same_rows(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    db: psycopg.AsyncConnection[Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The replay's end rebuilds the query_* tables in two transactions (migration 0025):
    the MRR and event parts on the second, and the rows those of the one-transaction
    ``query_support_rebuild()``. The end's steps are logged with their seconds."""
    bodies = _world()
    await post_all(webhook_client, [b for _, b in bodies])
    beside: list[list[str]] = []
    real_parts = replay._rebuild_parts

    async def parts(engine: Any, names: Any, steps: Any) -> None:
        beside.append(list(names))
        await real_parts(engine, names, steps)

    monkeypatch.setattr(replay, "_rebuild_parts", parts)
    service = await make_ledger(consume=False, replay_batch_size=50)
    with caplog.at_level(logging.INFO, logger="services.ledger.grpc_api"):
        answer = await _replay(service.grpc.port)
    assert answer.applied == len(billing_event_ids(bodies))
    assert 0 < answer.finish_seconds < answer.seconds  # the end's share is reported
    cur = await db.execute("SELECT ledger.query_support_parts()")
    row = await cur.fetchone()
    assert row is not None
    (finished,) = [r for r in caplog.records if r.getMessage() == "replay finished"]
    steps: dict[str, float] = finished.finish_steps  # type: ignore[attr-defined]
    assert {f"rebuild {part}" for part in row[0]} | {
        "derived refresh",
        "billing_events indexes (beside)",
    } <= set(steps)
    assert all(0 <= seconds <= answer.finish_seconds for seconds in steps.values())
    assert beside == [[p for p in row[0] if p in {"mrr", "events"}]]  # once, in order
    assert await _deferred(db) == 0
    rebuilt_in_two = await _all_query_tables(db)
    assert rebuilt_in_two["query_accounts"] and rebuilt_in_two["query_mrr_steps"]
    await db.execute("SELECT ledger.query_support_rebuild()")  # one transaction, every part
    assert await _all_query_tables(db) == rebuilt_in_two
    clean = await _verify(service.grpc.port)
    assert clean.mismatches == 0, clean.sample


async def test_a_failing_part_beside_leaves_the_rebuild_to_the_next_replay(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    db: psycopg.AsyncConnection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should the second connection's parts fail, the first one's transaction (which removes
    the deferral marker) rolls back too: the next replay rebuilds everything."""
    bodies = _world()
    await post_all(webhook_client, [b for _, b in bodies])
    before = await _indexes(db)
    real_parts = replay._rebuild_parts

    async def failing(engine: Any, names: Any, steps: Any) -> None:
        await real_parts(engine, ["no such part"], steps)  # CASE_NOT_FOUND in the database

    monkeypatch.setattr(replay, "_rebuild_parts", failing)
    service = await make_ledger(consume=False, replay_batch_size=50)
    with pytest.raises(grpc.aio.AioRpcError):
        await _replay(service.grpc.port)
    assert await _deferred(db) == 1  # the marker stays
    assert await _indexes(db) == before

    monkeypatch.setattr(replay, "_rebuild_parts", real_parts)
    again = await _replay(service.grpc.port)
    assert again.examined == len(bodies)
    assert await _deferred(db) == 0
    clean = await _verify(service.grpc.port)
    assert clean.mismatches == 0, clean.sample


async def _all_query_tables(db: psycopg.AsyncConnection[Any]) -> dict[str, list[Any]]:
    """Every row of every table the rebuild fills, in a stable order."""
    cur = await db.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'ledger'"
        " AND tablename LIKE 'query\\_%%' AND tablename <> 'query_support_deferred'"
        " AND tablename <> 'query_session_hourly' ORDER BY 1"
    )
    out: dict[str, list[Any]] = {}
    for (table,) in await cur.fetchall():
        rows = await db.execute(f"SELECT * FROM ledger.{table}")  # noqa: S608 - catalog name
        out[str(table)] = sorted(await rows.fetchall(), key=repr)
    return out


async def test_the_end_leaves_the_loaded_tables_vacuumed(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    db: psycopg.AsyncConnection[Any],
) -> None:
    """A bulk replay's end vacuums what it loaded (before the indexes are built): the pages of
    billing_events are all-visible and the refreshed tables' dead versions are gone, so the
    ledger's first readers and autovacuum find nothing left to do."""
    bodies = _world()
    await post_all(webhook_client, [b for _, b in bodies])
    service = await make_ledger(consume=False, replay_batch_size=50)
    answer = await _replay(service.grpc.port)
    assert answer.applied == len(billing_event_ids(bodies))
    await db.execute("SELECT pg_stat_clear_snapshot()")
    cur = await db.execute(
        "SELECT c.relname, c.relpages, c.relallvisible, s.n_dead_tup, s.vacuum_count"
        " FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid"
        " WHERE s.schemaname = 'ledger' AND c.relname = ANY(%s)",
        (["billing_events", "payments", "subscriptions", "accounts", "charges"],),
    )
    tables = {str(r[0]): r[1:] for r in await cur.fetchall()}
    assert len(tables) == 5
    for name, (pages, all_visible, dead, vacuums) in tables.items():
        assert vacuums >= 1, name
        assert dead == 0, name
        assert pages > 0 and all_visible == pages, name
