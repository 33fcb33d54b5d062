"""A packed world (bytes on disk and in memory) serves exactly what the materialised one does.

The packed form exists so a benchmark's simulator can hold 100,000 customers; it is only
useful if nothing observable changes: the same events (ids, times, types, bodies), the same
latest objects, and the same pages through the real ``stripe`` client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe

from services.stripe_simulator import World, WorldConfig, generate_world
from services.stripe_simulator.packed import (
    PackedObjects,
    PackedWorld,
    pack_world,
    splice_expanded,
    world_directory,
)
from services.stripe_simulator.server import ServerSettings, SimulatorServer

JSON = dict[str, Any]
CONFIG = WorldConfig(seed=5, tenants=50, months=3)


@pytest.fixture(scope="module")
def plain() -> World:
    return generate_world(CONFIG)


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackedWorld]:
    directory = world_directory(tmp_path_factory.mktemp("packed"), CONFIG)
    pack_world(CONFIG, directory)
    world = PackedWorld(directory)
    yield world
    world.close()


def test_events_and_bodies_are_the_generated_ones(plain: World, packed: PackedWorld) -> None:
    assert len(packed.events) == len(plain.events)
    for i, event in enumerate(plain.events):
        row = packed.events[i]
        assert (row["id"], row["created"], row["type"], row["api_version"]) == (
            event["id"],
            event["created"],
            event["type"],
            event["api_version"],
        )
        assert packed.bodies[i] == plain.bodies[i]
        assert packed.index.get(event["id"]) == i
    assert [b for _, b in packed.stored_bodies(chunk=5000)] == plain.bodies
    assert packed.last_event_time == plain.last_event_time


def test_unknown_event_ids_have_no_position(plain: World, packed: PackedWorld) -> None:
    real = plain.events[3]["id"]
    tampered = real[:-1] + ("A" if real[-1] != "A" else "B")
    for eid in (tampered, "evt_nope", "", real[:16], f"{real[:10]}zzzzzz{real[16:]}"):
        assert packed.index.get(eid) is None
        assert eid not in packed.index


def test_objects_are_the_latest_versions(plain: World, packed: PackedWorld) -> None:
    assert set(packed.objects) == set(plain.objects)
    for kind, objects in plain.objects.items():
        assert dict(packed.objects[kind].items()) == objects, kind
    assert packed.api_version_of == plain.api_version_of


def test_reopening_a_complete_directory_does_not_regenerate(packed: PackedWorld) -> None:
    events = Path(packed.directory) / "events.bin"
    before = events.stat().st_mtime_ns
    pack_world(CONFIG, packed.directory)
    again = PackedWorld(packed.directory)
    try:
        assert events.stat().st_mtime_ns == before
        assert len(again.events) == len(packed.events)
    finally:
        again.close()


def _walk(url: str, path: str, params: JSON) -> list[JSON]:
    client = stripe.StripeClient("sk_test_packed", base_addresses={"api": url})
    out: list[JSON] = []
    query = {**params, "limit": 7}
    while True:
        page = client.raw_request("get", path, **query).data
        out.append(page)
        if not page["has_more"]:
            return out
        query["starting_after"] = page["data"][-1]["id"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/subscriptions", {"status": "all", "expand": ["data.latest_invoice"]}),
        ("/v1/subscriptions", {}),
        (
            "/v1/subscriptions",
            {"status": "all", "expand": ["data.customer", "data.latest_invoice"]},
        ),
        ("/v1/invoices", {}),
        ("/v1/invoices", {"status": "paid", "expand": ["data.customer"]}),
        ("/v1/charges", {"created": {"gte": CONFIG.start_ts + 40 * 86_400}}),
        ("/v1/events", {}),
        ("/v1/events", {"type": "invoice.*"}),
    ],
)
def test_served_pages_are_the_same(
    plain: World, packed: PackedWorld, path: str, params: JSON
) -> None:
    settings = ServerSettings(auto_deliver=False)
    with (
        SimulatorServer(plain, settings=settings) as a,
        SimulatorServer(packed, settings=settings) as b,
    ):
        assert _walk(b.url, path, params) == _walk(a.url, path, params)


def test_a_mutation_is_served_and_listed(tmp_path: Path, packed: PackedWorld) -> None:
    world = PackedWorld(packed.directory)  # its own copy: the module's stays unchanged
    try:
        with SimulatorServer(world, settings=ServerSettings(auto_deliver=False)) as sim:
            client = stripe.StripeClient("sk_test_packed", base_addresses={"api": sim.url})
            sid = next(iter(world.objects["subscription"]))
            client.raw_request("post", f"/v1/subscriptions/{sid}", cancel_at_period_end="true")
            fresh = client.raw_request("get", f"/v1/subscriptions/{sid}").data
            assert fresh["cancel_at_period_end"] is True
            newest = client.raw_request("get", "/v1/events", limit=1).data["data"][0]
            assert newest["type"] == "customer.subscription.updated"
            assert newest["data"]["object"]["id"] == sid
            again = client.raw_request("get", f"/v1/events/{newest['id']}").data
            assert again == newest
    finally:
        world.close()


def test_splice_expands_only_an_unambiguous_id() -> None:
    known = {"in_1": b'{"id":"in_1","status":"paid"}'}
    splice = lambda raw: splice_expanded(raw, "latest_invoice", known.get)  # noqa: E731
    assert splice(b'{"id":"s","latest_invoice":"in_1","x":1}') == (
        b'{"id":"s","latest_invoice":{"id":"in_1","status":"paid"},"x":1}'
    )
    assert splice(b'{"latest_invoice":null}') == b'{"latest_invoice":null}'
    assert splice(b'{"latest_invoice":"in_9"}') == b'{"latest_invoice":"in_9"}'
    assert splice(b'{"a":{"latest_invoice":"in_1"},"latest_invoice":"in_1"}') is None
    assert splice(b'{"id":"s"}') is None


def test_the_index_knows_every_objects_time(plain: World, packed: PackedWorld) -> None:
    for kind, objects in plain.objects.items():
        expected = {oid: int(obj.get("created", 0)) for oid, obj in objects.items()}
        stored = packed.objects[kind]
        assert isinstance(stored, PackedObjects)
        assert dict(stored.created_pairs()) == expected, kind
