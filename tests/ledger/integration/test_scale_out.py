"""Two ledger writers on ONE durable JetStream consumer (issue 12, goal 5).

Two ledger services (each with its own engine and NATS connection, i.e. two writers to
PostgreSQL, as two ``LEDGER_PROCESSES`` copies are) share the durable consumer while a world is
delivered through the real webhook path. Both must have applied part of it, and the result
must be the ledger that ONE consumer builds from the same stream into another database, and
pass VerifyLedger (a replay of the archive into a scratch schema) with 0 mismatches.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from services.common.config import libpq_url
from services.common.grpc_client import aio_channel
from services.common.migrate import upgrade_to_head
from services.devstack.embedded import EmbeddedNats
from services.ledger.app import LedgerService, start_ledger
from tests.ingest.conftest import WebhookClient
from tests.ledger.integration.conftest import delete_consumer, ledger_settings, post_all
from tests.ledger.integration.ledger_helpers import (
    billing_event_ids,
    renamed,
    snapshot,
    world_bodies,
)
from tests.servers import PostgresHandle, unique_name


async def _billing_rows(url: str, ids: set[str]) -> int:
    async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM ledger.billing_events WHERE stripe_event_id = ANY(%s)",
            (sorted(ids),),
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def _wait_for_rows(url: str, ids: set[str], timeout: float = 240) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (done := await _billing_rows(url, ids)) < len(ids):
        assert asyncio.get_running_loop().time() < deadline, f"{done} of {len(ids)} rows"
        await asyncio.sleep(0.2)


async def test_two_writers_on_one_durable_consumer_build_the_one_consumer_ledger(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    pg: PostgresHandle,
    nats: EmbeddedNats,
    database_url: str,
) -> None:
    bodies = renamed(world_bodies(11, 6, 4), uuid.uuid4().hex[:8])
    expected = billing_event_ids(bodies)
    shared = f"ledger_shared_{uuid.uuid4().hex[:8]}"
    # Small batches, so both writers get a share of a few hundred events.
    first: LedgerService = await make_ledger(consumer_name=shared, batch_size=4)
    second: LedgerService = await make_ledger(consumer_name=shared, batch_size=4)

    await post_all(webhook_client, [body for _, body in bodies], concurrency=16)
    await _wait_for_rows(database_url, expected)
    assert first.consumer is not None and second.consumer is not None
    for _ in range(100):  # the last acks follow the last commit
        if first.consumer.acked + second.consumer.acked >= len(bodies):
            break
        await asyncio.sleep(0.1)
    shares = (first.consumer.acked, second.consumer.acked)
    assert sum(shares) == len(bodies), shares  # each message applied and acked once
    assert min(shares) > 0, shares  # both writers really wrote

    # The same stream, ONE consumer, another database: the reference ledger.
    alone_url = pg.create_database(unique_name("alone"))
    upgrade_to_head(alone_url)
    alone = await start_ledger(
        ledger_settings(
            alone_url,
            nats.url,
            f"127.0.0.1:{first.grpc.port}",  # not called: this ledger only consumes
            consumer_name=f"{shared}_alone",
            batch_size=64,
        )
    )
    try:
        await _wait_for_rows(alone_url, expected)
    finally:
        await alone.stop()
        await delete_consumer(nats.url, alone.settings.consumer_name)

    async with (
        await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as two,
        await psycopg.AsyncConnection.connect(libpq_url(alone_url), autocommit=True) as one,
    ):
        shared_ledger, single_ledger = await snapshot(two), await snapshot(one)
    assert shared_ledger["billing_events"], "the world produced billing rows"
    assert shared_ledger == single_ledger

    async with aio_channel(f"127.0.0.1:{first.grpc.port}") as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        verified = await stub.VerifyLedger(ledger_pb2.VerifyLedgerRequest(), timeout=120)
    assert (verified.mismatches, verified.unreadable, verified.failed) == (0, 0, 0)
    assert verified.examined == len(bodies)
