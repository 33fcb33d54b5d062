"""A backlog is consumed in batches that ramp up, each acked after its own commit (issue 12).

The live write has a fixed cost per transaction (round trips, the query_* flush, the commit),
so the consumer writes a backlog in batches doubling from ``LEDGER_BATCH_RAMP_FROM`` up to
``LEDGER_BATCH_SIZE`` (16000 from 2000 by default, bench/RESULTS.md eighth and tenth passes).
Here a world is archived and published while no ledger consumes, then one ledger catches up: its
transactions must ramp (first small, doubling, never above the bound), every message must be
applied and acked exactly once, and the ledger must verify against a replay (0 mismatches).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from services.common.grpc_client import aio_channel
from services.ledger.app import LedgerService
from services.ledger.consumer import ConsumerOptions, LedgerConsumer, ProjectedMessages
from services.ledger.settings import LedgerSettings
from tests.ingest.conftest import WebhookClient
from tests.ledger.integration.conftest import post_all
from tests.ledger.integration.ledger_helpers import billing_event_ids, renamed, world_bodies
from tests.ledger.integration.test_scale_out import _wait_for_rows


async def test_a_backlog_is_written_in_ramping_batches_each_acked_once(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bodies = renamed(world_bodies(11, 6, 4), uuid.uuid4().hex[:8])
    expected = billing_event_ids(bodies)
    assert len(bodies) > 16 + 32 + 64 + 128, "the backlog must outlast the ramp"
    # Archived and published before any ledger consumes: a backlog in the stream.
    await post_all(webhook_client, [body for _, body in bodies], concurrency=16)

    sizes: list[int] = []
    apply = LedgerConsumer.apply

    async def recording(self: LedgerConsumer, projected: ProjectedMessages) -> None:
        sizes.append(len(projected.msgs))
        await apply(self, projected)

    monkeypatch.setattr(LedgerConsumer, "apply", recording)
    ledger: LedgerService = await make_ledger(batch_size=128, batch_ramp_from=16)
    await _wait_for_rows(database_url, expected)
    assert ledger.consumer is not None
    for _ in range(100):  # the last acks follow the last commit
        if ledger.consumer.acked >= len(bodies):
            break
        await asyncio.sleep(0.1)
    assert ledger.consumer.acked == len(bodies)  # each message applied and acked once
    assert sum(sizes) == len(bodies), sizes
    assert sizes[:4] == [16, 32, 64, 128], sizes
    assert max(sizes) == 128, sizes

    async with aio_channel(f"127.0.0.1:{ledger.grpc.port}") as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        verified = await stub.VerifyLedger(ledger_pb2.VerifyLedgerRequest(), timeout=120)
    assert (verified.mismatches, verified.unreadable, verified.failed) == (0, 0, 0)


def test_by_default_a_backlog_ramps_from_2000_to_8000_per_transaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://billing@db:5432/billing")
    monkeypatch.setenv("NATS_URL", "nats://nats:4222")
    monkeypatch.delenv("LEDGER_BATCH_SIZE", raising=False)
    monkeypatch.delenv("LEDGER_BATCH_RAMP_FROM", raising=False)
    settings = LedgerSettings.from_env()
    assert (settings.batch_size, settings.batch_ramp_from) == (16000, 2000)
    options = ConsumerOptions()
    assert (options.batch_size, options.ramp_from) == (16000, 2000)
