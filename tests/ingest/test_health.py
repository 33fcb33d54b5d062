"""``/healthz`` reports the real dependencies; the outbox metrics move while NATS is away."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY

from services.ingest.app import IngestService
from tests.helpers import eventually
from tests.ingest.conftest import WebhookClient, event_body
from tests.servers import nats_server

pytestmark = pytest.mark.integration


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def healthz(session: aiohttp.ClientSession, port: int) -> tuple[int, dict[str, Any]]:
    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
        return response.status, await response.json()


async def test_nats_outage_is_reported_and_counted(make_ingest: Callable[..., object]) -> None:
    with nats_server() as broker:
        service: IngestService = await make_ingest(nats_url=broker.url)  # type: ignore[misc]
        assert await service.link.wait_connected(10)
        async with aiohttp.ClientSession() as session:
            status, report = await healthz(session, service.admin_port)
            assert status == 200
            assert report["checks"] == {"database": True, "nats": True}
            assert report["ready"] is True

            failures_before = sample("ingest_publish_failures_total")
            broker.stop()
            await eventually(lambda: not service.link.connected)
            client = WebhookClient(session, f"http://127.0.0.1:{service.http_port}/webhooks/stripe")
            for i in range(4):
                assert (await client.post(event_body(f"evt_nats_away_{i}")))[0] == 200

            # Ingest stays ready (it archives without NATS: invariant 1) but says NATS is away.
            status, report = await healthz(session, service.admin_port)
            assert status == 200
            assert report["checks"] == {"database": True, "nats": False}
            assert report["degraded"] == ["nats"]
            await eventually(lambda: sample("ingest_publish_failures_total") >= failures_before + 4)
            await eventually(lambda: sample("ingest_outbox_backlog") >= 4, attempts=400)

            broker.start()
            await eventually(lambda: sample("ingest_outbox_backlog") == 0, attempts=600)
            status, report = await healthz(session, service.admin_port)
            assert (status, report["checks"]["nats"]) == (200, True)


async def test_database_down_makes_it_not_ready(make_ingest: Callable[..., object]) -> None:
    # A database URL nobody answers: the service starts, and says it is not ready.
    dead = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    service: IngestService = await make_ingest(database_url=dead)  # type: ignore[misc]
    async with aiohttp.ClientSession() as session:
        status, report = await healthz(session, service.admin_port)
    assert status == 503
    assert report["ready"] is False
    assert report["checks"]["database"] is False


async def test_each_group_commit_is_timed(webhooks: WebhookClient) -> None:
    """``ingest_archive_commit_seconds``: one observation per archive transaction (what a
    webhook's latency is made of besides its wait in the queue)."""
    before = sample("ingest_archive_commit_seconds_count")
    batches = sample("ingest_archive_batch_size_count")
    assert (await webhooks.post(event_body("evt_timed")))[0] == 200
    timed = sample("ingest_archive_commit_seconds_count") - before
    assert timed >= 1
    assert timed == sample("ingest_archive_batch_size_count") - batches
    assert sample("ingest_archive_commit_seconds_sum") > 0
