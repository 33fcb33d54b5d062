"""The ledger's own pull client against a REAL NATS server: what comes back for each status
(404, 408, 409 in its three kinds, 100), the redelivery count after a nak with delay, term,
and acks and fetches across a broker restart in the middle of a batch.

Each test has its own stream and durable consumer, so the session's STRIPE_EVENTS and the
other tests' consumers are never touched. Deadlines are generous: a fetch that returns long
before its deadline shows a status ended it (waiting the deadline out is the failure)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats as nats_client
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from services.devstack.embedded import EmbeddedNats
from services.ledger.jetstream_pull import (
    JetStreamPull,
    PullConsumerGone,
    PullRequestRejected,
    parse_ack_subject,
)
from services.ledger.nats_deliveries import installed
from tests.helpers import eventually
from tests.servers import nats_server

LONG = 20.0  # a deadline no passing test waits out


@dataclass
class World:
    client: Client
    js: JetStreamContext
    stream: str
    subject: str
    durable: str

    async def publish(self, count: int, start: int = 0) -> None:
        for i in range(start, start + count):
            await self.js.publish(self.subject, f'{{"n": {i}}}'.encode())

    async def consumer(self, **config: object) -> JetStreamPull:
        await self.js.add_consumer(
            self.stream,
            ConsumerConfig(durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT, **config),  # type: ignore[arg-type]
        )
        return await self.pull()

    async def pull(self, idle_heartbeat: float = 0.0) -> JetStreamPull:
        pull = JetStreamPull(self.client, self.stream, self.durable, idle_heartbeat=idle_heartbeat)
        await pull.start()
        return pull

    async def ack_pending(self) -> int:
        info = await self.js.consumer_info(self.stream, self.durable)
        return info.num_ack_pending or 0

    async def all_acked(self) -> bool:
        return await self.ack_pending() == 0


async def _world(url: str) -> World:
    client = await nats_client.connect(
        url, allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    js = client.jetstream()
    tag = uuid.uuid4().hex[:10]
    stream = f"PULL_{tag}"
    subject = f"pulltest.{tag}.event"
    await js.add_stream(StreamConfig(name=stream, subjects=[subject], storage=StorageType.FILE))
    return World(client, js, stream, subject, f"d_{tag}")


@pytest.fixture
async def world(nats: EmbeddedNats) -> AsyncIterator[World]:
    w = await _world(nats.url)
    try:
        yield w
    finally:
        await w.js.delete_stream(w.stream)
        await w.client.close()


def _numbers(msgs: list) -> list[int]:  # type: ignore[type-arg]
    return [int(m.data.decode().split(": ")[1].rstrip("}")) for m in msgs]


async def test_pending_messages_come_at_once_and_a_404_ends_a_short_batch(world: World) -> None:
    pull = await world.consumer()
    await world.publish(7)
    first = await pull.fetch(5, LONG)
    second = await pull.fetch(5, LONG)  # only 2 left: the no_wait request's 404 ends it
    assert pull.statuses["408"] == 0  # no request ran to its expiry
    assert _numbers(first) == [0, 1, 2, 3, 4] and _numbers(second) == [5, 6]
    assert pull.statuses["404"] == 1
    await pull.ack(first + second)
    await eventually(world.all_acked)  # acks are fire-and-forget: applied soon
    await pull.stop()


async def test_an_empty_consumer_gives_an_empty_batch_after_the_request_expires(
    world: World,
) -> None:
    pull = await world.consumer()
    assert await pull.fetch(10, 1.0) == []
    # The no_wait probe got a 404; the lingering request expired on the server (408) before
    # the local deadline, so it was not a stale answer.
    assert pull.statuses["404"] == 1 and pull.statuses["408"] == 1
    assert pull.stale_statuses == 0
    await pull.stop()


async def test_a_lingering_request_returns_what_arrives_while_it_waits(world: World) -> None:
    pull = await world.consumer()

    async def later() -> None:
        await asyncio.sleep(0.3)
        await world.publish(3)

    publisher = asyncio.create_task(later())
    started = time.monotonic()
    got: list = []  # type: ignore[type-arg]
    while len(got) < 3 and time.monotonic() - started < LONG:
        got += await pull.fetch(3, LONG)
    await publisher
    assert _numbers(got) == [0, 1, 2]
    assert pull.statuses["408"] == 0  # the batch filled: the request did not expire
    await pull.stop()


async def test_idle_heartbeats_are_counted_and_end_nothing(world: World) -> None:
    pull = JetStreamPull(world.client, world.stream, world.durable, idle_heartbeat=0.1)
    await world.js.add_consumer(
        world.stream, ConsumerConfig(durable_name=world.durable, ack_policy=AckPolicy.EXPLICIT)
    )
    await pull.start()
    started = time.monotonic()
    assert await pull.fetch(10, 1.5) == []
    assert time.monotonic() - started >= 1.0  # the heartbeats did not end the request
    assert pull.statuses["100"] >= 2
    await pull.stop()


async def test_a_deleted_consumer_raises_so_the_caller_binds_again(world: World) -> None:
    pull = await world.consumer()
    waiting = asyncio.create_task(pull.fetch(10, LONG))
    await asyncio.sleep(0.5)  # the lingering request is on the server now
    await world.js.delete_consumer(world.stream, world.durable)
    with pytest.raises(PullConsumerGone, match="409"):
        await asyncio.wait_for(waiting, LONG / 2)
    await pull.stop()


async def test_a_request_over_the_consumer_batch_limit_is_rejected(world: World) -> None:
    # nats-py's ConsumerConfig has no max_batch: the consumer is created by the plain API.
    config = {"durable_name": world.durable, "ack_policy": "explicit", "max_batch": 5}
    answer = await world.client.request(
        f"$JS.API.CONSUMER.CREATE.{world.stream}.{world.durable}",
        json.dumps({"stream_name": world.stream, "config": config}).encode(),
        timeout=5,
    )
    assert b'"error"' not in answer.data, answer.data
    pull = await world.pull()
    await world.publish(8)
    with pytest.raises(PullRequestRejected, match="MaxRequestBatch"):
        await pull.fetch(10, LONG)
    assert _numbers(await pull.fetch(5, LONG)) == [0, 1, 2, 3, 4]
    await pull.stop()


async def test_max_waiting_exceeded_only_ends_that_request(world: World) -> None:
    first = await world.consumer(max_waiting=1)
    second = await world.pull()
    waiting = asyncio.create_task(first.fetch(10, 3.0))
    await asyncio.sleep(0.5)
    assert await second.fetch(10, LONG) == []
    assert second.statuses["408"] == 0  # ended by the 409, not by its expiry
    assert second.statuses["409"] >= 1
    assert await waiting == []
    await first.stop()
    await second.stop()


async def test_nak_with_delay_redelivers_later_with_the_count_and_term_stops_it(
    world: World,
) -> None:
    pull = await world.consumer()
    await world.publish(1)
    (msg,) = await pull.fetch(1, LONG)
    assert parse_ack_subject(msg.reply).num_delivered == 1
    await pull.nak(msg, delay=1.5)
    assert await pull.fetch(1, 0.5) == []  # not before the delay
    again: list = []  # type: ignore[type-arg]
    started = time.monotonic()
    while not again and time.monotonic() - started < LONG:
        again = await pull.fetch(1, 2.0)
    (msg,) = again
    delivery = parse_ack_subject(msg.reply)
    assert (delivery.num_delivered, delivery.stream_seq) == (2, 1)
    await pull.nak(msg)  # no delay: at once
    (msg,) = await pull.fetch(1, LONG)
    assert parse_ack_subject(msg.reply).num_delivered == 3
    await pull.term(msg)
    assert await pull.fetch(1, 1.0) == []
    await eventually(world.all_acked)  # acks are fire-and-forget: applied soon
    await pull.stop()


async def test_a_broker_restart_in_the_middle_of_a_batch() -> None:
    with nats_server() as broker:
        world = await _world(broker.url)
        try:
            pull = await world.consumer(ack_wait=8.0)
            await world.publish(6)
            batch = await pull.fetch(4, LONG)
            assert _numbers(batch) == [0, 1, 2, 3]
            waiting = asyncio.create_task(pull.fetch(10, 3.0))  # requests 4 and 5 next
            broker.stop()
            broker.start()
            # The fetch in flight ends by itself (statuses or its deadline); what it got, if
            # anything, is a real delivery.
            in_flight = await asyncio.wait_for(waiting, LONG)
            assert set(_numbers(in_flight)) <= {4, 5}
            # Acks of the batch fetched before the restart still count after it (a slow
            # restart may let ack_wait pass first: then 0-3 come again, at least once).
            await pull.ack(batch)
            got = list(in_flight)
            started = time.monotonic()
            while not {4, 5} <= {*_numbers(got)} and time.monotonic() - started < LONG:
                got += await pull.fetch(10, 3.0)  # redelivered after ack_wait if lost
            assert {4, 5} <= {*_numbers(got)} <= {0, 1, 2, 3, 4, 5}
            await pull.ack(got)
            await eventually(world.all_acked)  # acks are fire-and-forget: applied soon
            await pull.stop()
        finally:
            await world.client.close()


# A server that lets a client leave at most 2 MB unread, with messages of at most 64 KB (so
# the client's floor for max_bytes, twice max_payload, stays far below max_pending).
SMALL_PENDING = "max_pending: 2MB\nmax_payload: 64KB\n"


def _stall_after_pull_requests(client: Client, seconds: float) -> None:
    """Block the event loop for ``seconds`` after each pull request is on the wire: the
    client reads nothing meanwhile, as when the projection holds the interpreter."""
    publish = client.publish

    async def stalling(subject: str, payload: bytes = b"", reply: str = "", headers=None):  # type: ignore[no-untyped-def]
        await publish(subject, payload, reply=reply, headers=headers)
        if subject.startswith("$JS.API.CONSUMER.MSG.NEXT."):
            await client.flush()
            time.sleep(seconds)

    client.publish = stalling  # type: ignore[method-assign]


async def _big_backlog(world: World, count: int) -> None:
    body = b"x" * 10_000
    for _ in range(count):
        await world.js.publish(world.subject, body)


async def test_without_max_bytes_a_big_batch_gets_the_client_cut_as_a_slow_consumer() -> None:
    """The failure max_bytes prevents, on a real server: 6 MB asked for at once by a client
    that does not read for a moment exceeds max_pending, and the server drops the
    connection (the batch then waits out ack_wait)."""
    with nats_server(SMALL_PENDING) as broker:
        world = await _world(broker.url)
        try:
            pull = await world.consumer(ack_wait=30.0)
            await _big_backlog(world, 600)
            _stall_after_pull_requests(world.client, 0.5)
            got = await pull.fetch(600, 3.0)
            assert len(got) < 600
            await eventually(lambda: _reconnected(world.client))
            assert "Slow Consumer" in (broker.data_dir / "nats.log").read_text()
        finally:
            await world.client.close()


async def test_max_bytes_ends_a_big_batch_before_the_servers_max_pending() -> None:
    with nats_server(SMALL_PENDING) as broker:
        world = await _world(broker.url)
        try:
            await world.js.add_consumer(
                world.stream,
                ConsumerConfig(durable_name=world.durable, ack_policy=AckPolicy.EXPLICIT),
            )
            pull = JetStreamPull(world.client, world.stream, world.durable, max_bytes=512 * 1024)
            await pull.start()
            await _big_backlog(world, 600)
            _stall_after_pull_requests(world.client, 0.5)
            first = await pull.fetch(600, LONG)
            # ~512 KB of 10 KB messages, ended by the server's 409, not by the deadline
            assert 10 <= len(first) <= 60
            assert pull.cut_by_bytes and pull.statuses["409"] >= 1
            got = list(first)
            while len(got) < 600:
                more = await pull.fetch(600, LONG)
                assert more, "a fetch came back empty with messages still pending"
                got += more
            await pull.ack(got)
            await eventually(world.all_acked)
            assert world.client.stats["reconnects"] == 0
            assert "Slow Consumer" not in (broker.data_dir / "nats.log").read_text()
            assert len({parse_ack_subject(m.reply).stream_seq for m in got}) == 600
            # the deliveries came the direct way (services/ledger/nats_deliveries.py), and
            # stop() takes the inbox off it
            parser = installed(world.client)
            assert parser is not None and list(parser.sinks) == [pull._sub._id]  # type: ignore[union-attr]
            await pull.stop()
            assert parser.sinks == {}
        finally:
            await world.client.close()


def _reconnected(client: Client) -> bool:
    return int(client.stats["reconnects"]) >= 1


async def test_a_message_larger_than_the_byte_bound_is_still_delivered() -> None:
    """A message stored while the server allowed larger payloads is larger than the fetch's
    byte floor (twice today's ``max_payload``): it comes in a fetch of its own, unbounded,
    instead of a 409 for every request forever."""
    with nats_server() as broker:
        world = await _world(broker.url)
        try:
            pull = await world.consumer()
            await world.js.publish(world.subject, b"y" * 600_000)
            await world.publish(3)
            broker.config = "max_payload: 131072\n"  # 128 KB: the floor becomes 256 KB
            broker.stop()
            broker.start()
            # connected again, to the server with the smaller limit
            await eventually(lambda: world.client.max_payload == 131072, attempts=400)
            bounded = JetStreamPull(world.client, world.stream, world.durable, max_bytes=1)
            await bounded.start()
            got: list = []  # type: ignore[type-arg]
            while len(got) < 4:
                more = await bounded.fetch(10, LONG)
                assert more, "nothing came although 4 messages are pending"
                got += more
            assert len(got[0].data) == 600_000
            assert _numbers(got[1:]) == [0, 1, 2]
            await bounded.ack(got)
            await eventually(world.all_acked)
            await bounded.stop()
            await pull.stop()
        finally:
            await world.client.close()
