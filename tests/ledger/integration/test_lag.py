"""Consumer lag gauges (issue 12): pending messages and the age of the oldest unapplied one,
measured from JetStream for a durable consumer that nobody else is draining."""

from __future__ import annotations

import asyncio
import uuid

import nats as nats_client
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client import REGISTRY

from services.common.nats_link import STREAM_NAME, SUBJECT_PREFIX, NatsLink, subject_for
from services.devstack.embedded import EmbeddedNats
from services.ledger.lag import LagMonitor
from tests.ledger.integration.conftest import delete_consumer, purge_stream


def _gauge(name: str, consumer: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"consumer": consumer})


async def test_lag_counts_pending_and_ages_the_oldest_unapplied_message(
    nats: EmbeddedNats,
) -> None:
    name = f"lag_{uuid.uuid4().hex[:10]}"
    link = NatsLink(nats.url, name="lag-test")
    link.start()
    client = await nats_client.connect(nats.url)
    try:
        assert await link.wait_connected(10)
        await purge_stream(nats.url)
        js = client.jetstream()
        monitor = LagMonitor(link, name)
        assert await monitor.sample() is None  # no such consumer yet: nothing exported
        await js.add_consumer(
            STREAM_NAME,
            ConsumerConfig(
                durable_name=name,
                ack_policy=AckPolicy.EXPLICIT,
                filter_subject=SUBJECT_PREFIX + ">",
            ),
        )
        empty = await monitor.sample()
        assert empty is not None and (empty.pending, empty.ack_pending) == (0, 0)
        assert empty.oldest_age_seconds == 0.0

        for i in range(3):
            await js.publish(subject_for("invoice.paid"), b"{}", headers={"Nats-Msg-Id": f"e{i}"})
        await asyncio.sleep(0.5)
        waiting = await monitor.sample()
        assert waiting is not None and (waiting.pending, waiting.ack_pending) == (3, 0)
        assert 0.4 <= waiting.oldest_age_seconds < 60
        assert _gauge("ledger_consumer_pending_messages", name) == 3
        assert _gauge("ledger_consumer_oldest_unprojected_age_seconds", name) == (
            waiting.oldest_age_seconds
        )

        sub = await js.pull_subscribe_bind(durable=name, stream=STREAM_NAME)
        first, second = await sub.fetch(2, timeout=5)
        await second.ack_sync()  # acked out of order: the first is still the oldest
        partly = await monitor.sample()
        assert partly is not None and (partly.pending, partly.ack_pending) == (1, 1)
        assert partly.oldest_age_seconds >= waiting.oldest_age_seconds
        assert _gauge("ledger_consumer_ack_pending_messages", name) == 1

        await first.ack_sync()
        (third,) = await sub.fetch(1, timeout=5)
        await third.ack_sync()
        done = await monitor.sample()
        assert done is not None and (done.pending, done.ack_pending) == (0, 0)
        assert done.oldest_age_seconds == 0.0
        assert _gauge("ledger_consumer_oldest_unprojected_age_seconds", name) == 0.0
        await sub.unsubscribe()
    finally:
        await client.close()
        await link.close()
        await delete_consumer(nats.url, name)
