"""Deterministic world generation: a chronological stream of Stripe ``event`` objects.

``iter_events(config)`` streams events (bounded memory: one small state per live customer);
``generate_world(config)`` materialises a :class:`World` (events, serialised bodies and the
latest version of every object) for tests, the demo and the REST simulator.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import render_common as rc
from .catalog import build_catalog
from .config import WorldConfig, is_basil
from .customer_sim import CustomerSim, WorldContext
from .ids import event_id, idempotency_key, request_id, world_tag
from .renderer import renderer_for

JSON = dict[str, Any]

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def serialize_event(event: JSON) -> bytes:
    """The exact body bytes of an event (compact UTF-8 JSON, key order as built).

    Fast path: a shared encoder without circular checks; the output depends only on the
    dict's insertion order, which is deterministic, so equal worlds give equal bytes.
    """
    return _ENCODER.encode(event).encode()


def make_context(config: WorldConfig) -> WorldContext:
    """Shared context (id tag, catalog, time window) for a config."""
    tag = world_tag(config.seed)
    start = config.start_ts
    catalog = build_catalog(tag, config.currencies, start - 30 * 86_400)
    return WorldContext(
        config=config,
        tag=tag,
        catalog=catalog,
        start_ts=start,
        end_ts=config.end_ts,
        versions=config.version_cycle(),
    )


class _Envelope:
    """Wraps records into event envelopes with world-unique, sequential ids."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.seq = 0

    def __call__(
        self, t: int, version: str, etype: str, obj: JSON, prev: JSON | None, api: bool
    ) -> JSON:
        self.seq += 1
        seq = self.seq
        data: JSON = (
            {"object": obj} if prev is None else {"object": obj, "previous_attributes": prev}
        )
        return {
            "id": event_id(self.tag, seq),
            "object": "event",
            "api_version": version,
            "created": t,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": (
                {"id": request_id(self.tag, seq), "idempotency_key": idempotency_key(seq)}
                if api
                else {"id": None, "idempotency_key": None}
            ),
            "type": etype,
        }


def _catalog_events(ctx: WorldContext, env: _Envelope) -> Iterator[JSON]:
    version = ctx.versions[0]
    basil = is_basil(version)
    r = renderer_for(version)
    cat = ctx.catalog
    for p in cat.products:
        yield env(p.created, version, "product.created", rc.product(p, basil), None, True)
    for price in cat.all_prices():
        yield env(price.created, version, "price.created", rc.price(price, basil), None, True)
        yield env(price.created, version, "plan.created", rc.plan(price, basil), None, True)
    coupons = [cat.percent_coupon, *cat.amount_coupons.values()]
    for cp in coupons:
        yield env(cp.created, version, "coupon.created", r.coupon(cp), None, True)


def iter_events(config: WorldConfig) -> Iterator[JSON]:
    """Stream the world's events in chronological order (ties: customer index, then emission).

    Customers are resumed through a heap keyed by their next action time; each step's events
    carry exactly that time, so the merged stream is ordered without sorting it.
    """
    ctx = make_context(config)
    env = _Envelope(ctx.tag)
    yield from _catalog_events(ctx, env)
    heap: list[tuple[int, int, CustomerSim, Iterator[int]]] = []
    for idx in range(config.tenants):
        sim = CustomerSim(ctx, idx)
        heap.append((sim.signup_t, idx, sim, sim.run()))
    heapq.heapify(heap)
    # Prime: each generator first yields its signup time without doing any work.
    for _, _, _, gen in heap:
        next(gen)
    while heap:
        t, idx, sim, gen = heap[0]
        nxt: int | None = next(gen, None)
        if nxt is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (nxt, idx, sim, gen))
        if sim.out:
            version = sim.api_version
            for etype, obj, prev, api in sim.out:
                yield env(t, version, etype, obj, prev, api)
            sim.out.clear()


def iter_event_bodies(config: WorldConfig) -> Iterator[tuple[str, bytes]]:
    """Stream ``(event id, serialised body)`` pairs (what a webhook endpoint would receive)."""
    for ev in iter_events(config):
        yield ev["id"], serialize_event(ev)


#: Object types kept in :attr:`World.objects`, keyed by the ``object`` field.
TRACKED = (
    "customer",
    "subscription",
    "invoice",
    "charge",
    "refund",
    "credit_note",
    "payment_intent",
    "payment_method",
    "subscription_schedule",
    "product",
    "price",
    "coupon",
    "tax_id",
)


@dataclass
class World:
    """A materialised world: ordered events, their exact bodies and the latest objects.

    ``objects[kind][id]`` is the most recent rendering of each object seen in an event (in
    its customer's API version family), which is what the REST simulator serves.
    """

    config: WorldConfig
    tag: str
    events: list[JSON] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    objects: dict[str, dict[str, JSON]] = field(default_factory=dict)
    api_version_of: dict[str, str] = field(default_factory=dict)
    next_seq: int = 0

    def add_event(self, event: JSON) -> bytes:
        """Append an event (already enveloped), index it and update the object store."""
        body = serialize_event(event)
        self.index[event["id"]] = len(self.events)
        self.events.append(event)
        self.bodies.append(body)
        obj = event["data"]["object"]
        kind = obj.get("object")
        if kind in TRACKED and "id" in obj:
            self.objects.setdefault(kind, {})[obj["id"]] = obj
            if kind == "customer":
                self.api_version_of[obj["id"]] = event["api_version"]
        if kind == "charge":
            for rf in obj.get("refunds", {}).get("data", []):
                self.objects.setdefault("refund", {}).setdefault(rf["id"], rf)
        return body

    def body(self, event_id: str) -> bytes:
        """The serialised body of ``event_id`` (raises ``KeyError`` if unknown)."""
        return self.bodies[self.index[event_id]]

    def event_bodies(self) -> list[tuple[str, bytes]]:
        """``(id, body)`` of every event in order."""
        return [(ev["id"], b) for ev, b in zip(self.events, self.bodies, strict=True)]

    @property
    def last_event_time(self) -> int:
        """``created`` of the newest event (the default simulator clock)."""
        return self.events[-1]["created"] if self.events else self.config.start_ts

    def new_event(
        self, t: int, version: str, etype: str, obj: JSON, prev: JSON | None, api: bool = True
    ) -> JSON:
        """Create, append and return a new event (used by REST mutations)."""
        self.next_seq += 1
        seq = self.next_seq
        env = _Envelope(self.tag)
        env.seq = seq - 1
        event = env(t, version, etype, obj, prev, api)
        self.add_event(event)
        return event


def generate_world(config: WorldConfig) -> World:
    """Materialise the whole world in memory (use :func:`iter_events` for large worlds)."""
    world = World(config=config, tag=world_tag(config.seed))
    for ev in iter_events(config):
        world.add_event(ev)
    world.next_seq = len(world.events)
    return world
