"""Publishing: every archived event reaches JetStream once NATS is reachable, whatever failed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp
import nats as nats_client
import pytest

from services.common.nats_link import STREAM_NAME
from services.devstack.embedded import EmbeddedNats
from services.ingest.app import IngestService
from tests.helpers import eventually, query
from tests.ingest.conftest import WebhookClient, event_body
from tests.servers import nats_server

pytestmark = pytest.mark.integration


async def stream_messages(url: str) -> dict[str, tuple[str, bytes]]:
    """Every message of STRIPE_EVENTS: Nats-Msg-Id -> (subject, data)."""
    client = await nats_client.connect(url)
    try:
        js = client.jetstream()
        info = await js.stream_info(STREAM_NAME)
        found: dict[str, tuple[str, bytes]] = {}
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(STREAM_NAME, seq)
            msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
            found[msg_id] = (msg.subject or "", msg.data or b"")
        return found
    finally:
        await client.close()


def unpublished(database_url: str) -> int:
    return int(
        query(database_url, "SELECT count(*) FROM ingest.stripe_events WHERE published_at IS NULL")[
            0
        ][0]
    )


async def test_archived_event_is_published_with_msg_id(
    webhooks: WebhookClient, database_url: str, nats: EmbeddedNats
):
    body = event_body("evt_pub_1", "invoice.paid")
    assert (await webhooks.post(body))[0] == 200
    await eventually(lambda: unpublished(database_url) == 0)
    messages = await stream_messages(nats.url)
    assert messages["evt_pub_1"] == ("stripe.events.invoice.paid", body)
    stamped = query(database_url, "SELECT published_at FROM ingest.stripe_events")[0][0]
    assert stamped is not None


async def test_nats_down_then_back_publishes_backlog(
    database_url: str, make_ingest: Callable[..., object]
):
    with nats_server() as broker:
        service: IngestService = await make_ingest(nats_url=broker.url)  # type: ignore[misc]
        assert await service.link.wait_connected(10)
        async with aiohttp.ClientSession() as session:
            client = WebhookClient(session, f"http://127.0.0.1:{service.http_port}/webhooks/stripe")
            broker.stop()
            bodies = [event_body(f"evt_offline_{i}", "charge.succeeded") for i in range(5)]
            for body in bodies:
                status, _ = await client.post(body)
                assert status == 200  # archiving does not need NATS
            assert unpublished(database_url) == 5
            broker.start()  # same port, same storage
            await eventually(lambda: unpublished(database_url) == 0, attempts=400)
        messages = await stream_messages(broker.url)
        for i, body in enumerate(bodies):
            assert messages[f"evt_offline_{i}"][1] == body


async def test_crash_between_commit_and_publish_loses_nothing(
    database_url: str, nats: EmbeddedNats, make_ingest: Callable[..., object]
):
    # The state a crash right after COMMIT leaves behind: archived, never published.
    body = event_body("evt_crashed", "customer.updated")
    query(
        database_url,
        "INSERT INTO ingest.stripe_events (event_id, event_type, api_version, stripe_created_at,"
        " livemode, payload, payload_sha256, recovery_source, received_at)"
        " VALUES (%s, %s, %s, %s, false, %s, %s, 'webhook', now())",
        (
            "evt_crashed",
            "customer.updated",
            "2020-08-27",
            datetime.now(UTC),
            body,
            hashlib.sha256(body).digest(),
        ),
    )
    await make_ingest()  # type: ignore[misc]
    await eventually(lambda: unpublished(database_url) == 0, attempts=400)
    assert (await stream_messages(nats.url))["evt_crashed"][1] == body
