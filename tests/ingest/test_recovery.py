"""RecoverEvents: Stripe's events.list (played by the simulator, through the real `stripe`
client over HTTP) fills what webhooks missed, once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import grpc
import pytest
from billing.common.v1 import common_pb2
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc

from services.common.grpc_client import aio_channel
from services.common.stripe_client import StripeSettings
from services.ingest.app import IngestService
from services.stripe_simulator import (
    ApiFaults,
    DeliveryFaults,
    ServerSettings,
    SimulatorServer,
    WorldConfig,
    generate_world,
)
from tests.helpers import query
from tests.ingest.conftest import SECRET

pytestmark = pytest.mark.integration
RETENTION = 30 * 86_400


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    world = generate_world(WorldConfig(seed=11, tenants=12, months=3))
    settings = ServerSettings(
        webhook_secret=SECRET,
        delivery_faults=DeliveryFaults(seed=3, drop_rate=0.3),
        api_faults=ApiFaults(seed=5, error_429_rate=0.2),
        auto_deliver=False,
    )
    with SimulatorServer(world, settings=settings) as server:
        yield server


def in_window(server: SimulatorServer) -> list[dict[str, object]]:
    oldest = server.app.now - RETENTION
    return [e for e in server.world.events if int(str(e["created"])) >= oldest]


async def start(make_ingest: Callable[..., object], server: SimulatorServer) -> IngestService:
    service: IngestService = await make_ingest(  # type: ignore[misc]
        stripe=StripeSettings(api_key="sk_test_recovery", api_base=server.url, max_retries=5)
    )
    return service


async def test_recovery_appends_exactly_the_missing_events(
    simulator: SimulatorServer, make_ingest: Callable[..., object], database_url: str
):
    service = await start(make_ingest, simulator)
    url = f"http://127.0.0.1:{service.http_port}/webhooks/stripe"
    report = await asyncio.to_thread(simulator.deliver_pending, url=url, secret=SECRET)
    assert report.dropped > 0
    window = in_window(simulator)
    window_ids = {str(e["id"]) for e in window}
    archived_before = {
        r[0] for r in query(database_url, "SELECT event_id FROM ingest.stripe_events")
    }
    missing = window_ids - archived_before
    assert missing, "the drop rate should have lost events inside the 30-day window"

    async with aio_channel(f"127.0.0.1:{service.grpc.port}") as channel:
        stub: ingest_pb2_grpc.IngestServiceAsyncStub = ingest_pb2_grpc.IngestServiceStub(channel)
        first = await stub.RecoverEvents(ingest_pb2.RecoverEventsRequest())
        assert first.examined == len(window)
        assert first.appended == len(missing)
        assert set(first.appended_event_ids) == missing
        second = await stub.RecoverEvents(ingest_pb2.RecoverEventsRequest())
        assert (second.examined, second.appended) == (len(window), 0)
        listed = await stub.ListEvents(
            ingest_pb2.ListEventsRequest(
                recovered_only=True, page=common_pb2.PageRequest(page_size=500)
            )
        )
        assert {e.event_id for e in listed.events} == missing
        assert all(
            e.recovery_source == ingest_pb2.RECOVERY_SOURCE_EVENTS_LIST for e in listed.events
        )

    rows = query(
        database_url,
        "SELECT event_id, recovery_source, recovered_at, payload"
        " FROM ingest.stripe_events WHERE recovery_source = 'events_list'",
    )
    assert {r[0] for r in rows} == missing
    assert all(r[2] is not None for r in rows)
    for event_id, _, _, payload in rows:
        assert json.loads(bytes(payload)) == json.loads(simulator.world.body(event_id))
    # Webhook copies that events.list also returned are duplicates, not divergences.
    assert query(database_url, "SELECT count(*) FROM ingest.payload_divergences")[0][0] == 0


async def test_recovery_for_one_customer(
    simulator: SimulatorServer, make_ingest: Callable[..., object], database_url: str
):
    service = await start(make_ingest, simulator)
    window = in_window(simulator)
    customer = next(
        str(obj["customer"])
        for e in window
        for obj in [e["data"]["object"]]  # type: ignore[index]
        if isinstance(obj, dict) and isinstance(obj.get("customer"), str)
    )

    def about(event: dict[str, object]) -> bool:
        obj = event["data"]["object"]  # type: ignore[index]
        return bool(
            obj.get("customer") == customer
            or (obj.get("object") == "customer" and obj.get("id") == customer)
        )

    expected = {str(e["id"]) for e in window if about(e)}
    async with aio_channel(f"127.0.0.1:{service.grpc.port}") as channel:
        stub: ingest_pb2_grpc.IngestServiceAsyncStub = ingest_pb2_grpc.IngestServiceStub(channel)
        answer = await stub.RecoverEvents(ingest_pb2.RecoverEventsRequest(customer=customer))
    assert answer.appended == len(expected) == answer.examined
    assert {
        r[0] for r in query(database_url, "SELECT event_id FROM ingest.stripe_events")
    } == expected


async def test_stripe_unreachable_is_unavailable(make_ingest: Callable[..., object]):
    from services.devstack.embedded import free_port

    service: IngestService = await make_ingest(  # type: ignore[misc]
        stripe=StripeSettings(
            api_key="sk_test_x", api_base=f"http://127.0.0.1:{free_port()}", max_retries=0
        )
    )
    async with aio_channel(f"127.0.0.1:{service.grpc.port}") as channel:
        stub: ingest_pb2_grpc.IngestServiceAsyncStub = ingest_pb2_grpc.IngestServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.RecoverEvents(ingest_pb2.RecoverEventsRequest())
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
