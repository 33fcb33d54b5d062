"""The full pass decodes subscription pages with a typed decoder that keeps only the fields
compared: it must see exactly what the full parse sees, in every API version family, and a
page of an unforeseen shape must still be compared (parsed whole), never misread."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import msgspec
import orjson
import pytest
import stripe

from services.drift import compare as compare_module
from services.drift.compare import StripeView, decode_subscription_page
from services.drift.stripe_calls import StripeCaller, TokenBucket
from services.stripe_simulator import DEMO_API_VERSIONS, WorldConfig, generate_world
from services.stripe_simulator.server import ServerSettings, SimulatorServer

JSON = dict[str, Any]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    config = WorldConfig(
        seed=17, tenants=60, months=3, api_versions=DEMO_API_VERSIONS, spread_versions=True
    )
    with SimulatorServer(generate_world(config), settings=ServerSettings()) as server:
        yield server


def _pages(url: str) -> Iterator[bytes]:
    after = ""
    while True:
        query = "status=all&limit=100&expand[]=data.latest_invoice"
        query += f"&starting_after={after}" if after else ""
        request = urllib.request.Request(  # noqa: S310 - the loopback simulator
            f"{url}/v1/subscriptions?{query}", headers={"Authorization": "Bearer sk_test_d"}
        )
        with urllib.request.urlopen(request) as answer:  # noqa: S310 - loopback simulator
            body: bytes = answer.read()
        yield body
        page = orjson.loads(body)
        if not page["has_more"]:
            return
        after = page["data"][-1]["id"]


def test_typed_pages_compare_like_full_pages(sim: SimulatorServer) -> None:
    versions = set()
    seen = 0
    for body in _pages(sim.url):
        full = orjson.loads(body)
        typed = compare_module._PAGE_DECODER.decode(body)  # no fallback: every family fits
        assert typed["has_more"] == full["has_more"]
        assert len(typed["data"]) == len(full["data"])
        for small, whole in zip(typed["data"], full["data"], strict=True):
            assert StripeView.of(small) == StripeView.of(whole)  # type: ignore[arg-type]
            for name in ("id", "created", "customer"):
                assert small[name] == whole[name]  # type: ignore[literal-required]
            versions.add(sim.world.api_version_of.get(whole["customer"]))
            seen += 1
    assert seen == len(sim.world.objects["subscription"])
    assert len(versions) >= 4, versions


def test_an_unforeseen_shape_is_parsed_whole() -> None:
    body = orjson.dumps(
        {"data": [{"id": "sub_1", "items": "not-a-list", "status": "active"}], "has_more": False}
    )
    with pytest.raises(msgspec.ValidationError):
        compare_module._PAGE_DECODER.decode(body)
    assert decode_subscription_page(body) == orjson.loads(body)


def test_malformed_json_is_an_invalid_answer() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_subscription_page(b'{"data": [')


async def test_the_caller_refuses_a_malformed_page(monkeypatch: pytest.MonkeyPatch) -> None:
    client = stripe.StripeClient("sk_test_d", base_addresses={"api": "http://127.0.0.1:9"})
    caller = StripeCaller(client, TokenBucket(1000.0), max_attempts=1)

    class _Body:
        def read(self) -> bytes:
            return b'{"data": ['

        def close(self) -> None:
            pass

    class _Answer:
        io = _Body()

    monkeypatch.setattr(client._requestor, "request_stream", lambda *a, **k: _Answer())
    try:
        with pytest.raises(stripe.APIError, match="invalid response body"):
            await caller.request(
                "get", "/v1/subscriptions", decode=decode_subscription_page, limit=100
            )
    finally:
        caller.close()
