"""The whole drift path in this process: the Stripe simulator over HTTP (real ``stripe``
client), ingest receiving its webhooks, the ledger consuming JetStream, and the drift service,
on real PostgreSQL and NATS."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import nats as nats_client
import pytest
import stripe
from billing.drift.v1 import drift_pb2_grpc
from nats.js.errors import NotFoundError

from services.common.grpc_client import aio_channel
from services.common.nats_link import STREAM_NAME
from services.common.stripe_client import StripeSettings
from services.devstack.embedded import EmbeddedNats
from services.drift.app import DriftService, start_drift
from services.drift.settings import DriftSettings
from services.ingest.app import IngestService
from services.ledger.app import LedgerService, start_ledger
from services.stripe_simulator import WorldConfig, generate_world
from services.stripe_simulator.server import ServerSettings, SimulatorServer
from tests.helpers import eventually, query
from tests.ingest.conftest import SECRET, make_ingest
from tests.ledger.integration.conftest import delete_consumer, ledger_settings, purge_stream

KEY = "sk_test_drift"
#: Small but complete: every scenario once per API family of the default mix.
WORLD = WorldConfig(seed=21, tenants=16, months=3)


def drift_settings(
    database_url: str, nats_url: str, ingest: str, ledger: str, api: str, **overrides: Any
) -> DriftSettings:
    base = DriftSettings(
        database_url=database_url,
        nats_url=nats_url,
        ingest_grpc_addr=ingest,
        ledger_grpc_addr=ledger,
        host="127.0.0.1",
        grpc_port=0,
        admin_port=0,
        interval=0,
        stripe_configured=True,
        stripe=StripeSettings(api_key=KEY, api_base=api, max_retries=0),
        max_rps=500.0,
        concurrency=4,
        settle_seconds=1.0,
        log_level="INFO",
    )
    return replace(base, **overrides)


@dataclass
class DriftStack:
    sim: SimulatorServer
    ingest: IngestService
    ledger: LedgerService
    drift: DriftService
    database_url: str
    nats_url: str

    @property
    def drift_addr(self) -> str:
        return f"127.0.0.1:{self.drift.grpc.port}"

    def stripe(self) -> stripe.StripeClient:
        return stripe.StripeClient(KEY, base_addresses={"api": self.sim.url}, max_network_retries=0)

    async def deliver(self) -> Any:
        """Deliver the simulator's pending events (off this loop: ingest runs on it)."""
        return await asyncio.to_thread(self.sim.deliver_pending)

    async def settled(self) -> None:
        """Wait until every archived event is published and the ledger consumed it all."""

        def unpublished() -> bool:
            rows = query(
                self.database_url,
                "SELECT count(*) FROM ingest.stripe_events WHERE published_at IS NULL",
            )
            return rows[0][0] == 0

        await eventually(unpublished, attempts=600, pause=0.05)
        client = await nats_client.connect(self.nats_url)
        try:
            js = client.jetstream()
            name = self.ledger.settings.consumer_name

            async def drained() -> bool:
                info = await js.consumer_info(STREAM_NAME, name)
                return info.num_pending == 0 and info.num_ack_pending == 0

            await eventually(drained, attempts=600, pause=0.05)
        finally:
            await client.close()

    async def post_sim(self, path: str, body: dict[str, Any]) -> Any:
        import aiohttp

        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.sim.url}{path}", json=body) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()


_SEEDS = itertools.count(100)


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    """A new world per test, with its own seed: the session's NATS server deduplicates
    message ids (event ids) for minutes, so two tests must never share event ids."""
    settings = ServerSettings(auto_deliver=False, webhook_secret=SECRET)
    world = generate_world(replace(WORLD, seed=next(_SEEDS)))
    with SimulatorServer(world, settings=settings) as server:
        yield server


@pytest.fixture
async def make_stack(
    make_ingest: Callable[..., Any], database_url: str, nats: EmbeddedNats, sim: SimulatorServer
) -> AsyncIterator[Callable[..., Any]]:
    started: list[Any] = []

    async def factory(**drift_overrides: Any) -> DriftStack:
        await purge_stream(nats.url)
        ingest = await make_ingest(
            stripe=StripeSettings(api_key=KEY, api_base=sim.url, max_retries=3)
        )
        await ingest.link.wait_connected(10)
        sim.app.settings.webhook_url = f"http://127.0.0.1:{ingest.http_port}/webhooks/stripe"
        ledger = await start_ledger(
            ledger_settings(
                database_url,
                nats.url,
                f"127.0.0.1:{ingest.grpc.port}",
                consumer_name=f"ledger_{uuid.uuid4().hex[:10]}",
            )
        )
        started.append(ledger)
        drift = await start_drift(
            drift_settings(
                database_url,
                nats.url,
                f"127.0.0.1:{ingest.grpc.port}",
                f"127.0.0.1:{ledger.grpc.port}",
                sim.url,
                **drift_overrides,
            )
        )
        started.append(drift)
        return DriftStack(sim, ingest, ledger, drift, database_url, nats.url)

    yield factory
    for service in reversed(started):
        await service.stop()
    for service in started:
        if isinstance(service, LedgerService):
            await delete_consumer(nats.url, service.settings.consumer_name)


@pytest.fixture
async def stack(make_stack: Callable[..., Any]) -> DriftStack:
    """A stack whose ledger has the whole (clean) world."""
    built: DriftStack = await make_stack()
    await built.deliver()
    await built.settled()
    return built


@pytest.fixture
async def drift_stub(stack: DriftStack) -> AsyncIterator[Any]:
    async with aio_channel(stack.drift_addr) as channel:
        yield drift_pb2_grpc.DriftServiceStub(channel)


@pytest.fixture
async def ops_stub(stack: DriftStack) -> AsyncIterator[Any]:
    async with aio_channel(stack.drift_addr) as channel:
        yield drift_pb2_grpc.StripeOperationsStub(channel)


__all__ = ["NotFoundError", "make_ingest"]
