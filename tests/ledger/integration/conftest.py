"""Ledger integration fixtures: a ledger service on free ports next to an in-process ingest."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import nats as nats_client
import psycopg
import pytest
from billing.ledger.v1 import ledger_pb2_grpc
from nats.js.errors import NotFoundError

from services.common.config import libpq_url
from services.common.grpc_client import aio_channel
from services.common.nats_link import STREAM_NAME
from services.devstack.embedded import EmbeddedNats
from services.ingest.app import IngestService
from services.ledger.app import LedgerService, start_ledger
from services.ledger.settings import LedgerSettings
from tests.ingest.conftest import WebhookClient, make_ingest

__all__ = ["make_ingest"]


def ledger_settings(
    database_url: str, nats_url: str, ingest_addr: str, **overrides: Any
) -> LedgerSettings:
    base = LedgerSettings(
        database_url=database_url,
        nats_url=nats_url,
        ingest_grpc_addr=ingest_addr,
        host="127.0.0.1",
        grpc_port=0,
        admin_port=0,
        consumer_name=f"ledger_{uuid.uuid4().hex[:10]}",
        consume=True,
        batch_size=64,
        fetch_timeout=0.2,
        ack_wait=5.0,
        dead_letter_after=3,
        replay_batch_size=500,
        replay_workers=0,
        stream_max_age_days=1.0,
        log_level="INFO",
    )
    return replace(base, **overrides)


async def purge_stream(url: str) -> None:
    """Empty STRIPE_EVENTS: the NATS server is shared by the whole session."""
    client = await nats_client.connect(url)
    try:
        js = client.jetstream()
        with contextlib.suppress(NotFoundError):
            await js.purge_stream(STREAM_NAME)
    finally:
        await client.close()


async def delete_consumer(url: str, name: str) -> None:
    client = await nats_client.connect(url)
    try:
        with contextlib.suppress(NotFoundError):
            await client.jetstream().delete_consumer(STREAM_NAME, name)
    finally:
        await client.close()


@pytest.fixture
async def ingest_service(
    make_ingest: Callable[..., Any], nats: EmbeddedNats
) -> IngestService:
    await purge_stream(nats.url)
    service = await make_ingest()
    assert isinstance(service, IngestService)
    await service.link.wait_connected(10)
    return service


@pytest.fixture
async def make_ledger(
    database_url: str, nats: EmbeddedNats, ingest_service: IngestService
) -> AsyncIterator[Callable[..., Any]]:
    started: list[LedgerService] = []

    async def factory(**overrides: Any) -> LedgerService:
        settings = ledger_settings(
            database_url, nats.url, f"127.0.0.1:{ingest_service.grpc.port}", **overrides
        )
        service = await start_ledger(settings)
        started.append(service)
        return service

    yield factory
    for service in started:
        await service.stop()
    for name in {s.settings.consumer_name for s in started}:
        await delete_consumer(nats.url, name)


@pytest.fixture
async def ledger(make_ledger: Callable[..., Any]) -> LedgerService:
    service = await make_ledger()
    assert isinstance(service, LedgerService)
    return service


@pytest.fixture
async def ledger_stub(
    ledger: LedgerService,
) -> AsyncIterator[ledger_pb2_grpc.LedgerServiceAsyncStub]:
    async with aio_channel(f"127.0.0.1:{ledger.grpc.port}") as channel:
        yield ledger_pb2_grpc.LedgerServiceStub(channel)  # type: ignore[misc]


@pytest.fixture
async def webhook_client(ingest_service: IngestService) -> AsyncIterator[WebhookClient]:
    async with aiohttp.ClientSession() as session:
        yield WebhookClient(
            session, f"http://127.0.0.1:{ingest_service.http_port}/webhooks/stripe"
        )


async def post_all(client: WebhookClient, bodies: list[bytes], concurrency: int = 16) -> None:
    """Deliver every body through the real webhook path; each must be acknowledged."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            status, answer = await client.post(body)
            assert status == 200, answer

    await asyncio.gather(*(worker() for _ in range(concurrency)))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """An autocommit connection to the test database."""
    conn = await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True)
    try:
        yield conn
    finally:
        await conn.close()
