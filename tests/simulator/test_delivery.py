"""Webhook delivery: signing, retries and seeded fault injection against a local receiver."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import stripe
from aiohttp import web

from services.stripe_simulator import World, WorldConfig, generate_world
from services.stripe_simulator.delivery import DeliveryFaults, WebhookDeliverer
from services.stripe_simulator.server import ServerSettings, SimulatorServer

SECRET = "whsec_delivery_test"


@dataclass
class Receiver:
    """Records what arrives; can fail the first ``fail_first`` attempts of each event."""

    url: str = ""
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_first: int = 0
    always_fail: bool = False
    attempts: Counter[str] = field(default_factory=Counter)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event_id = json.loads(body)["id"]
        self.attempts[event_id] += 1
        if self.always_fail or self.attempts[event_id] <= self.fail_first:
            return web.Response(status=500)
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        return web.Response(status=200)

    def reset(self) -> None:
        self.bodies.clear()
        self.headers.clear()
        self.attempts.clear()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/webhook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/webhook"
    yield rec
    await runner.cleanup()


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(WorldConfig(seed=3, tenants=12, months=3))


async def test_clean_delivery_verifies(receiver: Receiver, world: World) -> None:
    events = world.event_bodies()[:60]
    report = await WebhookDeliverer(receiver.url, SECRET, concurrency=1).deliver(events)
    assert report.delivered == len(events) and report.failed == 0
    assert receiver.bodies == [b for _, b in events], "exact bytes, in order"
    for body, headers in zip(receiver.bodies, receiver.headers, strict=True):
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], SECRET)


async def test_faults_are_deterministic(receiver: Receiver, world: World) -> None:
    events = world.event_bodies()[:200]
    faults = DeliveryFaults(seed=4, drop_rate=0.1, duplicate_rate=0.1, alter_rate=0.05,
                            delay_rate=0.1, max_delay=0.01, reorder_window=5)
    report = await WebhookDeliverer(receiver.url, SECRET, concurrency=4,
                                    faults=faults).deliver(events)
    got = Counter(json.loads(b)["id"] for b in receiver.bodies)
    first_bodies = list(receiver.bodies)
    assert 0 < report.dropped < 60 and report.duplicated > 0 and report.altered > 0
    assert report.delayed > 0 and report.reordered > 0
    assert report.delivered == len(receiver.bodies) == (
        len(events) - report.dropped + report.duplicated + report.altered)
    assert set(report.dropped_ids).isdisjoint(got)
    assert all(got[i] >= 2 for i in report.duplicated_ids + report.altered_ids)
    original = dict(events)
    for event_id in report.altered_ids:
        variants = {b for b in receiver.bodies if json.loads(b)["id"] == event_id}
        assert original[event_id] in variants and len(variants) == 2
    receiver.reset()
    again = await WebhookDeliverer(receiver.url, SECRET, concurrency=4,
                                   faults=faults).deliver(events)
    assert again.as_dict() == report.as_dict()
    assert sorted(receiver.bodies) == sorted(first_bodies)


async def test_reorder_changes_order_only(receiver: Receiver, world: World) -> None:
    events = world.event_bodies()[:50]
    faults = DeliveryFaults(seed=1, reorder_window=10)
    report = await WebhookDeliverer(receiver.url, SECRET, concurrency=1,
                                    faults=faults).deliver(events)
    assert report.reordered > 0
    assert receiver.bodies != [b for _, b in events]
    assert sorted(receiver.bodies) == sorted(b for _, b in events)


async def test_retries_then_success(receiver: Receiver, world: World) -> None:
    receiver.fail_first = 2
    events = world.event_bodies()[:10]
    report = await WebhookDeliverer(receiver.url, SECRET, concurrency=2, max_attempts=4,
                                    backoff_base=0.001).deliver(events)
    assert report.delivered == 10 and report.retries == 20 and report.failed == 0


async def test_bounded_retries_then_failure(receiver: Receiver, world: World) -> None:
    receiver.always_fail = True
    events = world.event_bodies()[:5]
    report = await WebhookDeliverer(receiver.url, SECRET, max_attempts=3,
                                    backoff_base=0.001).deliver(events)
    assert report.failed == 5 and report.delivered == 0 and report.sends == 15
    assert sorted(report.failed_ids) == sorted(i for i, _ in events)


async def test_server_control_deliver(receiver: Receiver) -> None:
    world = generate_world(WorldConfig(seed=8, tenants=4, months=2))
    settings = ServerSettings(webhook_url=receiver.url, webhook_secret=SECRET,
                              delivery_concurrency=1, auto_deliver=False)
    with SimulatorServer(world, settings=settings) as sim:
        n = len(world.events)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{sim.url}/_sim/deliver") as resp:
                report = await resp.json()
            assert report["delivered"] == n == len(receiver.bodies)
            async with http.post(f"{sim.url}/_sim/deliver") as resp:
                assert (await resp.json())["events"] == 0, "only pending events"
            client = stripe.StripeClient("sk_test_x", base_addresses={"api": sim.url},
                                         max_network_retries=0)
            sub = (await asyncio.to_thread(client.v1.subscriptions.list)).data[0]
            await asyncio.to_thread(client.v1.subscriptions.cancel, sub.id)
            async with http.post(f"{sim.url}/_sim/deliver") as resp:
                assert (await resp.json())["delivered"] == 1
            assert json.loads(receiver.bodies[-1])["type"] == "customer.subscription.deleted"
            now = sim.app.now
            async with http.post(f"{sim.url}/_sim/advance", json={"seconds": 60}) as resp:
                assert (await resp.json())["now"] == now + 60
            async with http.get(f"{sim.url}/_sim/stats") as resp:
                stats = await resp.json()
            assert stats["events"] == n + 1 and stats["pending"] == 0
            async with http.get(f"{sim.url}/_sim/events/{world.events[0]['id']}/body") as resp:
                assert await resp.read() == world.bodies[0]
