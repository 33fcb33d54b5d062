"""The archive streams read PostgreSQL's binary format (services/common/binary_rows.py): what
they send must be exactly what the archive holds and what Stripe sent, across chunk edges."""

from __future__ import annotations

import json

import pytest
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc

from services.ingest import grpc_api
from tests.helpers import eventually, query
from tests.ingest.conftest import WebhookClient
from tests.ingest.test_grpc import body_at

pytestmark = pytest.mark.integration


async def test_streams_in_small_chunks_equal_the_archive_and_the_posted_bytes(
    webhooks: WebhookClient,
    ingest_stub: ingest_pb2_grpc.IngestServiceAsyncStub,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
) -> None:
    # Chunks of 2: the keyset (created, event_id) is bound from binary-read rows at every edge,
    # ties on `created` included.
    monkeypatch.setattr(grpc_api, "STREAM_CHUNK", 2)
    posted: dict[str, bytes] = {}
    for i in range(7):
        body = body_at(f"evt_bin_{i}", 1_700_000_000 + (i * 3) % 4)
        await webhooks.post(body)
        posted[f"evt_bin_{i}"] = body
    expected_order = sorted(posted, key=lambda k: (json.loads(posted[k])["created"], k))
    # Every event stamped published first: a stamp landing between the stream and the keyed
    # read below would make the two differ in published_at (the stamp follows the publish
    # within milliseconds once the flow pauses).
    unpublished = "SELECT count(*) FROM ingest.stripe_events WHERE published_at IS NULL"
    await eventually(lambda: query(database_url, unpublished)[0][0] == 0)

    single = [e async for e in ingest_stub.StreamArchive(ingest_pb2.StreamArchiveRequest())]
    assert [e.event_id for e in single] == expected_order
    for event in single:
        assert event.payload == posted[event.event_id]  # byte for byte
        assert event.stripe_created_at.seconds == json.loads(posted[event.event_id])["created"]
        # The keyed read (SQLAlchemy, text format) gives the same message, field for field.
        keyed = await ingest_stub.GetEvent(
            ingest_pb2.GetEventRequest(event_id=event.event_id, include_payload=True)
        )
        assert event == keyed

    batched = [
        e
        async for b in ingest_stub.StreamArchiveBatches(ingest_pb2.StreamArchiveRequest())
        for e in b.events
    ]
    assert batched == single
    slim = [
        e
        async for b in ingest_stub.StreamArchiveBatches(
            ingest_pb2.StreamArchiveRequest(payload_only=True)
        )
        for e in b.events
    ]
    assert [(e.event_id, e.stripe_created_at, e.payload) for e in slim] == [
        (e.event_id, e.stripe_created_at, e.payload) for e in single
    ]
