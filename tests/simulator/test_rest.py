"""The REST subset, exercised through the real ``stripe`` client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from services.stripe_simulator import WorldConfig, generate_world
from services.stripe_simulator.faults import ApiFaults
from services.stripe_simulator.server import ServerSettings, SimulatorServer

KEY = "sk_test_simulator"
DAY = 86_400


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer(generate_world(WorldConfig(seed=5, tenants=46, months=5)))
    with server:
        yield server


def _client(url: str, key: str = KEY) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": url}, max_network_retries=0)


def test_list_events_pagination(sim: SimulatorServer) -> None:
    client = _client(sim.url)
    first = client.v1.events.list({"limit": 5})
    assert len(first.data) == 5 and first.has_more
    times = [e.created for e in first.data]
    assert times == sorted(times, reverse=True), "newest first"
    second = client.v1.events.list({"limit": 5, "starting_after": first.data[-1].id})
    assert not {e.id for e in first.data} & {e.id for e in second.data}
    back = client.v1.events.list({"limit": 5, "ending_before": second.data[0].id})
    assert [e.id for e in back.data] == [e.id for e in first.data]
    all_ids = [e.id for e in first.auto_paging_iter()]
    assert len(all_ids) == len(set(all_ids))
    assert all_ids[:5] == [e.id for e in first.data]


def test_events_retention_and_filters(sim: SimulatorServer) -> None:
    client = _client(sim.url)
    now = sim.app.now
    visible = list(client.v1.events.list({"limit": 100}).auto_paging_iter())
    world = sim.world.events
    expected = [e for e in world if now - 30 * DAY <= e["created"] <= now]
    assert len(visible) == len(expected) < len(world)
    assert min(e.created for e in visible) >= now - 30 * DAY
    old = next(e for e in world if e["created"] < now - 30 * DAY)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.retrieve(old["id"])
    recent = expected[-1]
    assert client.v1.events.retrieve(recent["id"]).id == recent["id"]
    only = list(client.v1.events.list({"type": "invoice.paid", "limit": 100})
                .auto_paging_iter())
    assert only and all(e.type == "invoice.paid" for e in only)
    several = list(client.v1.events.list({"types": ["invoice.paid", "charge.succeeded"],
                                          "limit": 100}).auto_paging_iter())
    assert {e.type for e in several} == {"invoice.paid", "charge.succeeded"}
    lo = now - 5 * DAY
    window = list(client.v1.events.list({"created": {"gte": lo, "lt": now},
                                         "limit": 100}).auto_paging_iter())
    assert window and all(lo <= e.created < now for e in window)


def test_retrieve_and_list_objects(sim: SimulatorServer) -> None:
    client = _client(sim.url)
    customers = client.v1.customers.list({"limit": 100})
    assert len(customers.data) == 46
    cus = customers.data[0]
    metadata = client.v1.customers.retrieve(cus.id).metadata
    assert metadata is not None and metadata["tenant_id"].startswith("tenant-")
    subs = client.v1.subscriptions.list({"customer": cus.id, "status": "all"})
    assert subs.data and all(s.customer == cus.id for s in subs.data)
    all_subs = list(client.v1.subscriptions.list({"status": "all", "limit": 100})
                    .auto_paging_iter())
    canceled = client.v1.subscriptions.list({"status": "canceled", "limit": 100}).data
    default = list(client.v1.subscriptions.list({"limit": 100}).auto_paging_iter())
    assert canceled and len(default) == len(all_subs) - len(canceled)
    sub = subs.data[0]
    invoices = client.v1.invoices.list({"subscription": sub.id, "limit": 100}).data
    assert invoices and all(i.customer == cus.id for i in invoices)
    assert client.v1.charges.list({"customer": cus.id}).data
    assert client.v1.refunds.list({"limit": 3}).data
    assert client.v1.credit_notes.list({"limit": 3}).data
    ch = client.v1.charges.list({"limit": 1}).data[0]
    assert client.v1.charges.retrieve(ch.id).id == ch.id


def test_errors(sim: SimulatorServer) -> None:
    client = _client(sim.url)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.retrieve("cus_doesnotexist")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.retrieve("evt_doesnotexist")
    with pytest.raises(stripe.AuthenticationError):
        _client(sim.url, "rk_live_nope").v1.customers.list()


def test_mutations_append_events(sim: SimulatorServer) -> None:
    client = _client(sim.url)
    n = len(sim.world.events)
    sub = next(s for s in client.v1.subscriptions.list({"limit": 100}).auto_paging_iter()
               if s.status == "active" and not s.cancel_at_period_end)
    updated = client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    assert updated.cancel_at_period_end and updated.cancel_at
    ev = sim.world.events[-1]
    assert ev["type"] == "customer.subscription.updated"
    assert ev["data"]["previous_attributes"]["cancel_at_period_end"] is False
    assert client.v1.events.list({"limit": 1}).data[0].id == ev["id"]
    canceled = client.v1.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled"
    assert sim.world.events[-1]["type"] == "customer.subscription.deleted"
    ch = next(c for c in client.v1.charges.list({"limit": 100}).auto_paging_iter()
              if c.status == "succeeded" and c.amount_refunded == 0 and c.amount > 10)
    refund = client.v1.refunds.create({"charge": ch.id, "amount": 10})
    assert refund.amount == 10 and refund.charge == ch.id
    assert [e["type"] for e in sim.world.events[-2:]] == ["charge.refunded", "refund.created"]
    assert client.v1.charges.retrieve(ch.id).amount_refunded == 10
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create({"charge": ch.id, "amount": ch.amount})
    assert len(sim.world.events) == n + 4


def test_injected_429_and_5xx() -> None:
    world = generate_world(WorldConfig(seed=2, tenants=5, months=2))
    settings = ServerSettings(api_faults=ApiFaults(seed=1, error_429_rate=1.0))
    with SimulatorServer(world, settings=settings) as sim:
        with pytest.raises(stripe.RateLimitError) as err:
            _client(sim.url).v1.events.list()
        assert err.value.http_status == 429
        assert err.value.headers is not None
        assert err.value.headers.get("Stripe-Should-Retry") == "true"
    settings = ServerSettings(api_faults=ApiFaults(seed=1, error_5xx_rate=1.0))
    with SimulatorServer(world, settings=settings) as sim, pytest.raises(stripe.APIError):
        _client(sim.url).v1.customers.list()


def test_fault_rate_is_seeded() -> None:
    world = generate_world(WorldConfig(seed=2, tenants=5, months=2))

    def outcomes() -> list[bool]:
        settings = ServerSettings(api_faults=ApiFaults(seed=9, error_429_rate=0.3))
        with SimulatorServer(world, settings=settings) as sim:
            client = _client(sim.url)
            out = []
            for _ in range(30):
                try:
                    client.v1.customers.list({"limit": 1})
                    out.append(True)
                except stripe.RateLimitError:
                    out.append(False)
            return out

    first = outcomes()
    assert first == outcomes()
    assert 0 < first.count(False) < 30


def test_token_bucket_rate_limit() -> None:
    world = generate_world(WorldConfig(seed=2, tenants=5, months=2))
    settings = ServerSettings(api_faults=ApiFaults(rate_limit=0.001, burst=3))
    with SimulatorServer(world, settings=settings) as sim:
        client = _client(sim.url)
        for _ in range(3):
            client.v1.customers.list({"limit": 1})
        with pytest.raises(stripe.RateLimitError) as err:
            client.v1.customers.list({"limit": 1})
        body = err.value.json_body
        assert isinstance(body, dict)
        error: dict[str, Any] = body["error"]
        assert error["code"] == "rate_limit"
        assert sim.app.stats["rate_limited"] == 1


def test_clock_advance_shrinks_window() -> None:
    world = generate_world(WorldConfig(seed=2, tenants=10, months=3))
    with SimulatorServer(world) as sim:
        client = _client(sim.url)
        before = len(list(client.v1.events.list({"limit": 100}).auto_paging_iter()))
        sim.advance(20 * DAY)
        after = len(list(client.v1.events.list({"limit": 100}).auto_paging_iter()))
        assert after < before
