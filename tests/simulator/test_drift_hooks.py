"""What the drift service needs from the simulator: list filters, 429 with Retry-After, the
write endpoints with idempotency keys, and the hooks that make Stripe and the suite disagree."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import stripe

from services.stripe_simulator import WorldConfig, generate_world
from services.stripe_simulator.faults import ApiFaults
from services.stripe_simulator.server import ServerSettings, SimulatorServer

KEY = "sk_test_simulator"
SECRET = "whsec_test_hooks"


class _Receiver(BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(json.loads(body)["id"])
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture()
def receiver() -> Iterator[str]:
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/webhook"
    server.shutdown()


@pytest.fixture()
def sim(receiver: str) -> Iterator[SimulatorServer]:
    settings = ServerSettings(webhook_url=receiver, webhook_secret=SECRET, auto_deliver=False)
    world = generate_world(WorldConfig(seed=11, tenants=24, months=3))
    with SimulatorServer(world, settings=settings) as server:
        yield server


def _client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(KEY, base_addresses={"api": url}, max_network_retries=0)


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - a local test URL
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:  # noqa: S310
        result: dict[str, Any] = json.loads(response.read())
    return result


def _active_subscription(client: stripe.StripeClient) -> Any:
    subs = client.v1.subscriptions.list({"status": "active", "limit": 100})
    return subs.data[0]


def test_status_all_and_expand(sim: SimulatorServer) -> None:
    client = _client(sim.url)
    every = list(client.v1.subscriptions.list({"status": "all", "limit": 100}).auto_paging_iter())
    default = list(client.v1.subscriptions.list({"limit": 100}).auto_paging_iter())
    assert len(every) == len(sim.world.objects["subscription"]) > len(default)
    page = client.v1.subscriptions.list(
        {"status": "all", "limit": 5, "expand": ["data.latest_invoice"]}
    )
    invoices = [s.latest_invoice for s in page.data if s.latest_invoice]
    assert invoices and all(isinstance(inv, stripe.Invoice) for inv in invoices)


def test_rate_limit_says_when_to_retry() -> None:
    settings = ServerSettings(api_faults=ApiFaults(rate_limit=1.0, burst=1))
    with SimulatorServer(config=WorldConfig(seed=3, tenants=4, months=2), settings=settings) as s:
        client = _client(s.url)
        client.v1.customers.list()
        with pytest.raises(stripe.RateLimitError) as info:
            client.v1.customers.list()
        headers = info.value.headers or {}
        assert headers.get("Stripe-Should-Retry") == "true"
        assert int(headers["Retry-After"]) >= 1


def test_quantity_update_is_idempotent(sim: SimulatorServer) -> None:
    client = _client(sim.url)
    sub = _active_subscription(client)
    events_before = len(sim.world.events)
    options: Any = {"idempotency_key": "qty-1"}
    item = sub["items"]["data"][0]["id"]
    first = client.v1.subscriptions.update(
        sub.id, {"items": [{"id": item, "quantity": 7}], "metadata": {"operator": "ops"}}, options
    )
    again = client.v1.subscriptions.update(
        sub.id, {"items": [{"id": item, "quantity": 7}]}, options
    )
    assert first["items"]["data"][0]["quantity"] == 7 == again["items"]["data"][0]["quantity"]
    assert len(sim.world.events) == events_before + 1, "the retry wrote nothing"
    assert client.v1.subscriptions.retrieve(sub.id).metadata["operator"] == "ops"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(sub.id, {"items": [{"id": item, "quantity": 0}]})


def test_refunds_partial_over_and_retried(sim: SimulatorServer) -> None:
    client = _client(sim.url)
    charge = next(
        c
        for c in client.v1.charges.list({"limit": 100}).auto_paging_iter()
        if c.status == "succeeded" and c.amount_refunded == 0 and c.amount >= 4
    )
    part = charge.amount // 4
    opts: Any = {"idempotency_key": "rf-1"}
    one = client.v1.refunds.create({"charge": charge.id, "amount": part}, opts)
    same = client.v1.refunds.create({"charge": charge.id, "amount": part}, opts)
    assert one.id == same.id
    client.v1.refunds.create({"charge": charge.id, "amount": part})
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 2 * part
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create({"charge": charge.id, "amount": charge.amount})
    assert str(charge.amount - 2 * part) in str(too_much.value)
    client.v1.refunds.create({"charge": charge.id})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create({"charge": charge.id})


def test_change_without_webhook_is_listed_not_delivered(sim: SimulatorServer) -> None:
    client = _client(sim.url)
    sim.deliver_pending()
    sub = _active_subscription(client)
    result = _post(f"{sim.url}/_sim/subscriptions/{sub.id}/change", {"quantity": 9})
    event_id = result["event_id"]
    assert client.v1.events.retrieve(event_id).data.object["id"] == sub.id
    assert client.v1.subscriptions.retrieve(sub.id)["items"]["data"][0]["quantity"] == 9
    _Receiver.received.clear()
    report = sim.deliver_pending()
    assert report.events == 0 and event_id not in _Receiver.received
    released = _post(f"{sim.url}/_sim/release", {})
    assert released["released"] == [event_id] and _Receiver.received == [event_id]


def test_suppress_and_alter(sim: SimulatorServer) -> None:
    held = [ev["id"] for ev in sim.world.events[-3:]]
    _post(f"{sim.url}/_sim/suppress", {"event_ids": held})
    report = sim.deliver_pending()
    assert report.events == len(sim.world.events) - 3
    assert not set(held) & set(_Receiver.received)
    _Receiver.received.clear()
    out = _post(f"{sim.url}/_sim/events/{held[0]}/redeliver", {"alter": True})
    assert out["altered"] and _Receiver.received == [held[0]]


def test_faults_can_change_at_run_time(sim: SimulatorServer) -> None:
    out = _post(f"{sim.url}/_sim/faults", {"api": {"error_5xx_rate": 1.0}})
    assert out["api"]["error_5xx_rate"] == 1.0
    with pytest.raises(stripe.APIError):
        _client(sim.url).v1.customers.list()
    _post(f"{sim.url}/_sim/faults", {"api": {}})
    assert _client(sim.url).v1.customers.list().data
    with pytest.raises(urllib.error.HTTPError):
        _post(f"{sim.url}/_sim/faults", {"api": {"nonsense": 1}})
