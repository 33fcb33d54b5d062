"""An in-process ingest service on free ports, against real PostgreSQL and NATS."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import aiohttp
import pytest
from billing.ingest.v1 import ingest_pb2_grpc

from services.common.grpc_client import aio_channel
from services.common.stripe_client import StripeSettings
from services.devstack.embedded import EmbeddedNats
from services.ingest.app import IngestService, start_ingest
from services.ingest.settings import IngestSettings
from services.stripe_simulator.signing import sign

SECRET = "whsec_test_primary"
ROTATED_SECRET = "whsec_test_rotated"


def settings_for(database_url: str, nats_url: str, **overrides: object) -> IngestSettings:
    base = IngestSettings(
        database_url=database_url,
        nats_url=nats_url,
        host="127.0.0.1",
        http_port=0,
        grpc_port=0,
        admin_port=0,
        webhook_secrets=[SECRET, ROTATED_SECRET],
        signature_tolerance=300,
        max_body_bytes=1024 * 1024,
        commit_timeout=2.0,
        archive_writers=2,
        outbox_sweep_interval=0.2,
        stream_max_age_days=1.0,
        log_level="INFO",
        stripe=StripeSettings(api_key="sk_test_ingest", api_base=None, max_retries=3),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def event_body(event_id: str, event_type: str = "customer.created", **extra: object) -> bytes:
    """A small but well-formed Stripe event envelope."""
    document = {
        "id": event_id,
        "object": "event",
        "api_version": "2020-08-27",
        "created": 1_700_000_000,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": {"id": "cus_test", "object": "customer", **extra}},
    }
    return json.dumps(document).encode()


class WebhookClient:
    """Posts bodies to the service's webhook endpoint, signed unless told otherwise."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def post(
        self,
        body: bytes,
        *,
        secret: str = SECRET,
        signature: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[int, dict[str, object]]:
        header = (
            signature
            if signature is not None
            else sign(body, secret, timestamp if timestamp is not None else int(time.time()))
        )
        headers = {"Content-Type": "application/json"}
        if header:
            headers["Stripe-Signature"] = header
        async with self.session.post(self.url, data=body, headers=headers) as response:
            return response.status, await response.json()


@pytest.fixture
async def make_ingest(
    database_url: str, nats: EmbeddedNats
) -> AsyncIterator[Callable[..., object]]:
    started: list[IngestService] = []

    async def factory(**overrides: object) -> IngestService:
        settings = settings_for(database_url, nats.url)
        settings = replace(settings, **overrides)  # type: ignore[arg-type]
        service = await start_ingest(settings)
        started.append(service)
        return service

    yield factory
    for service in started:
        await service.stop()


@pytest.fixture
async def ingest(make_ingest: Callable[..., object]) -> IngestService:
    service = await make_ingest()  # type: ignore[misc]
    assert isinstance(service, IngestService)
    await service.link.wait_connected(10)
    return service


@pytest.fixture
async def webhooks(ingest: IngestService) -> AsyncIterator[WebhookClient]:
    async with aiohttp.ClientSession() as session:
        yield WebhookClient(session, f"http://127.0.0.1:{ingest.http_port}/webhooks/stripe")


@pytest.fixture
async def ingest_stub(
    ingest: IngestService,
) -> AsyncIterator[ingest_pb2_grpc.IngestServiceAsyncStub]:
    async with aio_channel(f"127.0.0.1:{ingest.grpc.port}") as channel:
        yield ingest_pb2_grpc.IngestServiceStub(channel)
