"""A redelivery storm (duplicates, reordering, altered payloads, everything delivered twice)
through the real webhook path gives the same ledger as a calm in-order delivery."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from services.common.config import libpq_url
from services.stripe_simulator import DeliveryFaults, WebhookDeliverer
from tests.faults.inprocess import suite
from tests.helpers import eventually, query
from tests.ingest.conftest import SECRET
from tests.ledger.integration.ledger_helpers import (
    Snapshot,
    billing_event_ids,
    snapshot,
    world_bodies,
)
from tests.servers import PostgresHandle

pytestmark = pytest.mark.integration
WORLD = world_bodies(seed=23, tenants=4, months=3)


def applied(url: str) -> int:
    return int(query(url, "SELECT count(*) FROM ledger.billing_events")[0][0])


async def ledger_of(url: str) -> Snapshot:
    expected = len(billing_event_ids(WORLD))
    await eventually(lambda: applied(url) == expected, attempts=600, pause=0.1)
    async with await psycopg.AsyncConnection.connect(libpq_url(url)) as conn:
        return await snapshot(conn)


def storm_events() -> Iterator[tuple[str, bytes]]:
    yield from WORLD
    yield from reversed(WORLD)  # and everything once more, newest first


async def test_storm_gives_the_in_order_ledger(pg: PostgresHandle) -> None:
    async with suite(pg) as calm_suite:
        calm = await WebhookDeliverer(calm_suite.webhook_url, SECRET, concurrency=1).deliver(WORLD)
        assert calm.failed == 0
        in_order = await ledger_of(calm_suite.database_url)

    faults = DeliveryFaults(seed=5, duplicate_rate=0.4, alter_rate=0.2, reorder_window=40)
    async with suite(pg) as storm_suite:
        url = storm_suite.database_url
        deliverer = WebhookDeliverer(storm_suite.webhook_url, SECRET, concurrency=16, faults=faults)
        storm = await deliverer.deliver(storm_events())
        assert storm.failed == 0
        assert storm.duplicated > 0 and storm.altered > 0 and storm.reordered > 0
        stormed = await ledger_of(url)
        divergences = int(query(url, "SELECT count(*) FROM ingest.payload_divergences")[0][0])
        assert divergences > 0  # the altered copies were recorded, not applied

    assert stormed.keys() == in_order.keys()
    for table in in_order:
        assert stormed[table] == in_order[table], table
    assert sum(len(rows) for rows in in_order.values()) > 0
