"""``NatsLink.publish_many``: each message counts as published only when JetStream acknowledged
it (the outbox stamps ``published_at`` from this answer, so a wrong True would lose events)."""

from __future__ import annotations

import asyncio

import pytest

from services.common.nats_link import BrokerUnavailable, NatsLink, subject_for
from services.devstack.embedded import EmbeddedNats
from tests.ingest.test_outbox import stream_messages

pytestmark = pytest.mark.integration


async def test_acknowledged_messages_are_true_and_stored_once(nats: EmbeddedNats) -> None:
    link = NatsLink(nats.url, name="acks-test")
    link.start()
    try:
        assert await link.wait_connected(10)
        messages = [
            (subject_for("invoice.paid"), b'{"n":%d}' % n, f"evt_acks_{n}") for n in range(300)
        ]
        assert await link.publish_many(messages) == [True] * 300
        # Redelivered with the same ids: JetStream dedupes and still acknowledges.
        assert await link.publish_many(messages[:5]) == [True] * 5
        # Two batches at once (the fast path and the sweeper): each gets its own acks.
        more = [(subject_for("invoice.paid"), b"{}", f"evt_acks_more_{n}") for n in range(50)]
        both = await asyncio.gather(link.publish_many(more[:25]), link.publish_many(more[25:]))
        assert both == [[True] * 25, [True] * 25]
        stored = await stream_messages(nats.url)
        for subject, payload, msg_id in messages:
            assert stored[msg_id] == (subject, payload)
    finally:
        await link.close()


async def test_a_subject_no_stream_takes_is_not_acknowledged(nats: EmbeddedNats) -> None:
    link = NatsLink(nats.url, name="acks-test-nostream", ack_timeout=1.0)
    link.start()
    try:
        assert await link.wait_connected(10)
        answers = await link.publish_many(
            [
                ("no.stream.here", b"{}", "evt_nostream_1"),
                (subject_for("invoice.paid"), b"{}", "evt_acks_mixed"),
            ]
        )
        assert answers == [False, True]
    finally:
        await link.close()


async def test_not_connected_raises_broker_unavailable() -> None:
    link = NatsLink("nats://127.0.0.1:1", name="acks-test-down")
    with pytest.raises(BrokerUnavailable):
        await link.publish_many([(subject_for("invoice.paid"), b"{}", "evt_down")])
