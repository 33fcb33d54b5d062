"""The live consumer binds again when its durable consumer disappears under it (the pull
client's 409 "Consumer Deleted" / 503 answers), and goes on applying what ingest publishes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from services.devstack.embedded import EmbeddedNats
from services.ledger.app import LedgerService
from tests.helpers import eventually
from tests.ingest.conftest import WebhookClient
from tests.ledger.integration.conftest import delete_consumer, post_all
from tests.ledger.integration.ledger_helpers import billing_event_ids, renamed, world_bodies

pytestmark = pytest.mark.integration


async def _count(db: psycopg.AsyncConnection[Any]) -> int:
    cur = await db.execute("SELECT count(*) FROM ledger.billing_events")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_a_deleted_durable_consumer_is_created_again_and_consumption_goes_on(
    make_ledger: Callable[..., Any],
    nats: EmbeddedNats,
    webhook_client: WebhookClient,
    db: psycopg.AsyncConnection[Any],
) -> None:
    ledger: LedgerService = await make_ledger(fetch_timeout=2.0)
    assert ledger.consumer is not None
    first = renamed(world_bodies(3, 2, 2), uuid.uuid4().hex[:8])
    await post_all(webhook_client, [b for _, b in first])
    first_rows = len(billing_event_ids(first))
    assert await eventually(lambda: _at_least(db, first_rows), attempts=600)

    # The consumer now waits in a lingering pull request; delete the durable consumer.
    await delete_consumer(nats.url, ledger.settings.consumer_name)
    second = renamed(world_bodies(4, 2, 2), uuid.uuid4().hex[:8])
    await post_all(webhook_client, [b for _, b in second])
    rows = first_rows + len(billing_event_ids(second))
    assert await eventually(lambda: _at_least(db, rows), attempts=600)
    assert await _count(db) == rows  # the redelivered first world added nothing
    assert ledger.consumer.bound


async def _at_least(db: psycopg.AsyncConnection[Any], rows: int) -> bool:
    return await _count(db) >= rows
