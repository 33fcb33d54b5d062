"""A replay into an empty ledger copies billing rows straight in (issue 12); an event that
another writer applies meanwhile must not fail the replay nor change its result."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.grpc_client import aio_channel
from services.ledger import replay
from services.ledger.db import raw_transaction
from services.ledger.projection import apply_batch
from tests.ingest.conftest import WebhookClient
from tests.ledger.integration.conftest import post_all
from tests.ledger.integration.ledger_helpers import billing_event_ids, world_bodies

pytestmark = pytest.mark.integration

WORLD = (11, 4, 3)  # seed, tenants, months


async def test_an_event_applied_meanwhile_sends_the_replay_back_to_on_conflict(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    db: psycopg.AsyncConnection[Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bodies = world_bodies(*WORLD)
    expected = billing_event_ids(bodies)
    await post_all(webhook_client, [b for _, b in bodies])
    # The last event with a billing row: its batch is not the first one the replay writes.
    late = [body for event_id, body in bodies if event_id in expected][-1]
    real = replay._start_deferral
    seen: list[bool] = []

    async def consumer_races(engine: AsyncEngine) -> tuple[bool, bool]:
        defer, empty = await real(engine)
        seen.append(empty)
        async with raw_transaction(engine) as conn:  # as the live consumer would
            await apply_batch(conn, [late])
        return defer, empty

    monkeypatch.setattr(replay, "_start_deferral", consumer_races)
    service = await make_ledger(consume=False)
    async with aio_channel(f"127.0.0.1:{service.grpc.port}") as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        with caplog.at_level(logging.WARNING, logger="services.ledger.replay"):
            first = await stub.ReplayArchive(ledger_pb2.ReplayArchiveRequest())
        assert seen == [True]  # the ledger was empty: the direct COPY path was taken
        assert (first.examined, first.dead_lettered) == (len(bodies), 0)
        assert first.applied == len(expected) - 1  # the raced event was already there
        assert not [r for r in caplog.records if "one by one" in r.getMessage()]
        cur = await db.execute("SELECT count(*) FROM ledger.billing_events")
        assert await cur.fetchone() == (len(expected),)
        clean = await stub.VerifyLedger(ledger_pb2.VerifyLedgerRequest())
        assert clean.mismatches == 0, clean.sample
