"""A replay into an empty ledger drops the secondary indexes of the tables it writes and
builds them once at its end (issue 12). A replay that fails, or is killed, mid-way must never
leave the ledger without them, and the result must be the ledger it always was."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from services.common.grpc_client import aio_channel
from services.devstack.embedded import EmbeddedNats, free_port
from services.ingest.app import IngestService
from services.ledger import replay
from services.ledger.bulk_indexes import BULK_TABLES, RECORD_PREFIX
from services.ledger.db import DatabaseUnavailable
from tests.ingest.conftest import WebhookClient
from tests.ledger.integration.conftest import post_all
from tests.ledger.integration.ledger_helpers import billing_event_ids, renamed, world_bodies

pytestmark = pytest.mark.integration

WORLD = (11, 4, 3)  # seed, tenants, months
REPO = Path(__file__).resolve().parents[3]


def _world() -> tuple[tuple[str, bytes], ...]:
    """The world under fresh event ids: JetStream (shared by the session) dedupes by id."""
    return renamed(world_bodies(*WORLD), uuid.uuid4().hex[:8])


async def _indexes(db: psycopg.AsyncConnection[Any]) -> dict[str, str]:
    cur = await db.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'ledger' ORDER BY 1"
    )
    return {str(r[0]): str(r[1]) for r in await cur.fetchall()}


async def _records(db: psycopg.AsyncConnection[Any]) -> list[str]:
    cur = await db.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'ledger' AND starts_with(obj_description(c.oid, 'pg_class'), %s)"
        " ORDER BY 1",
        (RECORD_PREFIX,),
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def _autovacuum_off(db: psycopg.AsyncConnection[Any]) -> list[str]:
    """Ledger tables whose autovacuum is switched off (a bulk replay's, until its end)."""
    cur = await db.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'ledger' AND 'autovacuum_enabled=false' = ANY(c.reloptions)"
        " ORDER BY 1"
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def _count(db: psycopg.AsyncConnection[Any], sql: str) -> int:
    cur = await db.execute(sql)  # type: ignore[arg-type]
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _verify(port: int) -> ledger_pb2.VerifyLedgerResponse:
    async with aio_channel(f"127.0.0.1:{port}") as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        answer: ledger_pb2.VerifyLedgerResponse = await stub.VerifyLedger(
            ledger_pb2.VerifyLedgerRequest()
        )
        return answer


async def _replay(port: int) -> ledger_pb2.ReplayArchiveResponse:
    async with aio_channel(f"127.0.0.1:{port}") as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        answer: ledger_pb2.ReplayArchiveResponse = await stub.ReplayArchive(
            ledger_pb2.ReplayArchiveRequest()
        )
        return answer


async def test_a_bulk_replay_drops_the_secondary_indexes_and_builds_the_same_ones(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    db: psycopg.AsyncConnection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bodies = _world()
    await post_all(webhook_client, [b for _, b in bodies])
    before = await _indexes(db)
    seen: list[tuple[int, list[str]]] = []
    quiet: list[list[str]] = []
    real = replay._apply

    async def watching(*args: Any) -> Any:  # what the ledger looks like during the batches
        seen.append((len(await _indexes(db)), await _records(db)))
        quiet.append(await _autovacuum_off(db))
        return await real(*args)

    monkeypatch.setattr(replay, "_apply", watching)
    service = await make_ledger(consume=False, replay_batch_size=50)
    answer = await _replay(service.grpc.port)
    assert answer.applied == len(billing_event_ids(bodies))
    assert len(seen) > 2
    # During the batches: fewer indexes, each written table's definitions recorded.
    assert all(count < len(before) for count, _ in seen)
    assert {tuple(records) for _, records in seen} == {tuple(sorted(BULK_TABLES))}
    # ... and no autovacuum beside the batches on the tables being loaded.
    assert {tuple(tables) for tables in quiet} == {tuple(sorted(BULK_TABLES))}
    # Afterwards: exactly the migrations' indexes again, no record, the same ledger.
    assert await _indexes(db) == before
    assert await _records(db) == []
    assert await _autovacuum_off(db) == []
    clean = await _verify(service.grpc.port)  # the scratch schema is bulk-loaded too
    assert clean.mismatches == 0, clean.sample
    assert await _indexes(db) == before


async def test_the_scratch_schema_of_verify_matches_a_ledger_built_by_the_consumer(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    db: psycopg.AsyncConnection[Any],
) -> None:
    bodies = _world()
    expected = billing_event_ids(bodies)
    service = await make_ledger()  # consuming: the incremental path, refresh per batch
    await post_all(webhook_client, [b for _, b in bodies])
    for _ in range(600):
        if await _count(db, "SELECT count(*) FROM ledger.billing_events") == len(expected):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the consumer did not apply the world")
    clean = await _verify(service.grpc.port)  # bulk: indexes dropped, refresh once at the end
    assert clean.examined == len(bodies)
    assert clean.mismatches == 0, clean.sample


async def test_a_replay_that_fails_midway_gives_the_indexes_back(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    db: psycopg.AsyncConnection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bodies = _world()
    await post_all(webhook_client, [b for _, b in bodies])
    before = await _indexes(db)
    real = replay._apply
    calls: list[int] = []

    async def failing(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:  # two batches are committed by now
            raise DatabaseUnavailable("the database went away (simulated)")
        return await real(*args)

    monkeypatch.setattr(replay, "_apply", failing)
    service = await make_ledger(consume=False, replay_batch_size=50)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await _replay(service.grpc.port)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await _count(db, "SELECT count(*) FROM ledger.billing_events") > 0
    assert await _indexes(db) == before
    assert await _records(db) == []

    monkeypatch.setattr(replay, "_apply", real)
    again = await _replay(service.grpc.port)  # not empty any more: ON CONFLICT, indexes kept
    assert again.examined == len(bodies)
    assert await _indexes(db) == before
    clean = await _verify(service.grpc.port)
    assert clean.mismatches == 0, clean.sample


def _wait_healthy(port: int, child: subprocess.Popen[bytes], timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.1)):
        assert child.poll() is None, "the ledger process exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("ledger did not start")


async def test_a_killed_bulk_replay_leaves_a_record_and_the_ledger_is_whole_again(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    db: psycopg.AsyncConnection[Any],
    database_url: str,
    nats: EmbeddedNats,
    ingest_service: IngestService,
    tmp_path: Path,
) -> None:
    bodies = _world()
    expected = billing_event_ids(bodies)
    await post_all(webhook_client, [b for _, b in bodies])
    before = await _indexes(db)
    grpc_port, admin_port = free_port(), free_port()
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        NATS_URL=nats.url,
        INGEST_GRPC_ADDR=f"127.0.0.1:{ingest_service.grpc.port}",
        LEDGER_HOST="127.0.0.1",
        LEDGER_GRPC_PORT=str(grpc_port),
        LEDGER_ADMIN_PORT=str(admin_port),
        LEDGER_CONSUME="0",
        LEDGER_REPLAY_BATCH_SIZE="10",
        LEDGER_REPLAY_WORKERS="0",
    )
    with (tmp_path / "ledger.log").open("ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "services.ledger"], env=env, stdout=log, stderr=log, cwd=REPO
        )
    blocker = await psycopg.AsyncConnection.connect(db.info.dsn, autocommit=True)
    call: asyncio.Task[Any] | None = None
    try:
        await asyncio.to_thread(_wait_healthy, admin_port, child)
        call = asyncio.create_task(_replay(grpc_port))
        for _ in range(3000):
            if await _count(db, "SELECT count(*) FROM ledger.billing_events") > 0:
                break
            await asyncio.sleep(0.005)
        # The next batch waits for the writers' lock, which this connection now holds: the
        # replay is stopped mid-way, then killed (no cleanup of any kind runs).
        await blocker.execute("SELECT pg_advisory_lock(hashtext('ledger:ledger'))")
        written = await _count(db, "SELECT count(*) FROM ledger.billing_events")
        assert 0 < written < len(expected)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        await blocker.close()  # releases the lock
        if call is not None:
            with pytest.raises(grpc.aio.AioRpcError):
                await call

    # What the kill left: the indexes dropped, and their definitions recorded.
    assert await _records(db) == sorted(BULK_TABLES)
    assert await _autovacuum_off(db) == sorted(BULK_TABLES)
    assert len(await _indexes(db)) < len(before)

    service = await make_ledger(consume=False)  # its start rebuilds them
    for _ in range(600):
        if not await _records(db):
            break
        await asyncio.sleep(0.1)
    assert await _indexes(db) == before
    assert await _autovacuum_off(db) == []  # back with the indexes
    again = await _replay(service.grpc.port)
    assert again.examined == len(bodies)
    assert await _count(db, "SELECT count(*) FROM ledger.billing_events") == len(expected)
    assert await _indexes(db) == before
    clean = await _verify(service.grpc.port)
    assert clean.mismatches == 0, clean.sample
