"""List pages walked from the cursor (listing.ListIndex) against a plain reference.

The reference is the definition: the whole kind, newest ``created`` first (objects of the
same second: the one stored last first), filtered, then cut into pages. Every page the
simulator serves through the real ``stripe`` client must be that reference's page, with an
exact ``has_more``, including after the store grows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from services.stripe_simulator import WorldConfig, generate_world
from services.stripe_simulator.listing import CreatedBounds
from services.stripe_simulator.server import ServerSettings, SimulatorServer

JSON = dict[str, Any]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    world = generate_world(WorldConfig(seed=11, tenants=60, months=4))
    with SimulatorServer(world, settings=ServerSettings(auto_deliver=False)) as server:
        yield server


def _client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_listing", base_addresses={"api": url})


def _reference(
    sim: SimulatorServer, kind: str, created: JSON | None, customer: str | None
) -> list[str]:
    items = list(reversed(sim.world.objects[kind].values()))
    items.sort(key=lambda o: o.get("created", 0), reverse=True)
    bounds = CreatedBounds.of(created)
    out = []
    for obj in items:
        if obj.get("created", 0) not in bounds:
            continue
        if customer and obj.get("customer") != customer:
            continue
        out.append(obj["id"])
    return out


def _walk(client: stripe.StripeClient, path: str, params: JSON, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    query = {**params, "limit": limit}
    while True:
        page = client.raw_request("get", path, **query).data
        ids = [o["id"] for o in page["data"]]
        pages.append(ids)
        if not page["has_more"]:
            return pages
        assert len(ids) == limit, "has_more only after a full page"
        query["starting_after"] = ids[-1]


@pytest.mark.parametrize("limit", [1, 7, 100])
@pytest.mark.parametrize("kind", ["invoice", "charge", "subscription"])
def test_pages_equal_the_reference(sim: SimulatorServer, kind: str, limit: int) -> None:
    client = _client(sim.url)
    path = "/v1/" + ("subscriptions" if kind == "subscription" else f"{kind}s")
    params: JSON = {"status": "all"} if kind == "subscription" else {}
    times = sorted(o["created"] for o in sim.world.objects[kind].values())
    middle = times[len(times) // 2]
    quarter = times[len(times) // 4]
    customer = next(iter(sim.world.objects["customer"]))
    cases: list[tuple[JSON | None, str | None]] = [
        (None, None),
        ({"gte": middle}, None),
        ({"lt": middle}, None),
        ({"gte": quarter, "lt": middle}, None),
        ({"gt": quarter, "lte": middle}, None),
        (None, customer),
    ]
    for created, cust in cases:
        query = dict(params)
        if created is not None:
            query["created"] = created
        if cust is not None:
            query["customer"] = cust
        pages = _walk(client, path, query, limit)
        walked = [oid for page in pages for oid in page]
        assert walked == _reference(sim, kind, created, cust), (created, cust)


def test_slices_cover_the_list_exactly_once(sim: SimulatorServer) -> None:
    client = _client(sim.url)
    times = sorted(o["created"] for o in sim.world.objects["invoice"].values())
    cuts = [times[len(times) * i // 4] for i in range(1, 4)]
    slices = [{"lt": cuts[0]}, {"gte": cuts[0], "lt": cuts[1]}, {"gte": cuts[1], "lt": cuts[2]}]
    slices.append({"gte": cuts[2]})
    walked = [
        oid
        for created in slices
        for page in _walk(client, "/v1/invoices", {"created": created}, 100)
        for oid in page
    ]
    assert sorted(walked) == sorted(sim.world.objects["invoice"])


def test_unknown_cursor_and_new_objects(sim: SimulatorServer) -> None:
    client = _client(sim.url)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.raw_request("get", "/v1/invoices", starting_after="in_nope", limit=3)
    assert info.value.http_status == 400 and info.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as bad:
        client.raw_request("get", "/v1/invoices", limit=3, **{"created[gte]": "soon"})
    assert bad.value.http_status == 400
    first = client.raw_request("get", "/v1/refunds", limit=100).data["data"]
    # A refund created now is the newest: the cached order must be rebuilt to show it.
    charge = next(
        c
        for c in sim.world.objects["charge"].values()
        if c["status"] == "succeeded" and c["amount_refunded"] < c["amount"]
    )
    refund = client.v1.refunds.create({"charge": charge["id"], "amount": 1})
    again = client.raw_request("get", "/v1/refunds", limit=100).data["data"]
    assert again[0]["id"] == refund.id
    assert [r["id"] for r in again[1:]] == [r["id"] for r in first][: len(again) - 1]
