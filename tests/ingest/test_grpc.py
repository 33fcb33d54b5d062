"""IngestService over gRPC: reads, paging, streaming order, republish, error codes."""

from __future__ import annotations

import json

import grpc
import pytest
from billing.common.v1 import common_pb2
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.grpc_client import aio_channel
from tests.helpers import eventually, query
from tests.ingest.conftest import WebhookClient, event_body

pytestmark = pytest.mark.integration


def body_at(event_id: str, created: int, event_type: str = "invoice.paid") -> bytes:
    document = json.loads(event_body(event_id, event_type))
    document["created"] = created
    return json.dumps(document).encode()


async def test_get_event(
    webhooks: WebhookClient, database_url: str, ingest_stub: ingest_pb2_grpc.IngestServiceAsyncStub
):
    body = event_body("evt_get", "charge.refunded")
    await webhooks.post(body)
    meta = await ingest_stub.GetEvent(ingest_pb2.GetEventRequest(event_id="evt_get"))
    assert (meta.event_id, meta.type, meta.api_version) == (
        "evt_get",
        "charge.refunded",
        "2020-08-27",
    )
    assert meta.recovery_source == ingest_pb2.RECOVERY_SOURCE_WEBHOOK
    assert meta.payload == b""
    assert meta.HasField("received_at")
    full = await ingest_stub.GetEvent(
        ingest_pb2.GetEventRequest(event_id="evt_get", include_payload=True)
    )
    assert full.payload == body
    import hashlib

    assert full.payload_sha256 == hashlib.sha256(body).hexdigest()
    await eventually(
        lambda: (
            query(database_url, "SELECT published_at FROM ingest.stripe_events")[0][0] is not None
        )
    )
    later = await ingest_stub.GetEvent(ingest_pb2.GetEventRequest(event_id="evt_get"))
    assert later.HasField("published_at")


async def test_error_codes(ingest_stub: ingest_pb2_grpc.IngestServiceAsyncStub):
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await ingest_stub.GetEvent(ingest_pb2.GetEventRequest(event_id="evt_absent"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await ingest_stub.GetEvent(ingest_pb2.GetEventRequest(event_id=""))
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as token:
        await ingest_stub.ListEvents(
            ingest_pb2.ListEventsRequest(page=common_pb2.PageRequest(page_token="%%%not-a-token"))
        )
    assert token.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as republish:
        await ingest_stub.RepublishEvent(ingest_pb2.RepublishEventRequest(event_id="evt_absent"))
    assert republish.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_events_filters_and_pages(
    webhooks: WebhookClient, ingest_stub: ingest_pb2_grpc.IngestServiceAsyncStub
):
    for i in range(7):
        await webhooks.post(
            body_at(
                f"evt_list_{i}", 1_700_000_000 + i, "invoice.paid" if i % 2 else "charge.failed"
            )
        )
    seen: list[str] = []
    token = ""
    while True:
        page = await ingest_stub.ListEvents(
            ingest_pb2.ListEventsRequest(page=common_pb2.PageRequest(page_size=3, page_token=token))
        )
        assert page.page.total_count == 7
        seen.extend(e.event_id for e in page.events)
        token = page.page.next_page_token
        if not token:
            break
    assert seen == [f"evt_list_{i}" for i in reversed(range(7))]
    paid = await ingest_stub.ListEvents(ingest_pb2.ListEventsRequest(type="invoice.paid"))
    assert [e.event_id for e in paid.events] == ["evt_list_5", "evt_list_3", "evt_list_1"]
    window = await ingest_stub.ListEvents(
        ingest_pb2.ListEventsRequest(
            created=common_pb2.Period(
                start=Timestamp(seconds=1_700_000_002), end=Timestamp(seconds=1_700_000_004)
            )
        )
    )
    assert [e.event_id for e in window.events] == ["evt_list_3", "evt_list_2"]
    recovered = await ingest_stub.ListEvents(ingest_pb2.ListEventsRequest(recovered_only=True))
    assert list(recovered.events) == []


async def test_stream_archive_orders_by_created_then_id(
    webhooks: WebhookClient, ingest_stub: ingest_pb2_grpc.IngestServiceAsyncStub
):
    # Posted out of order; two share a second and must come out by event id.
    for event_id, created in [("evt_c", 30), ("evt_b", 20), ("evt_a2", 20), ("evt_z", 10)]:
        await webhooks.post(body_at(event_id, 1_700_000_000 + created))
    streamed = [e async for e in ingest_stub.StreamArchive(ingest_pb2.StreamArchiveRequest())]
    assert [e.event_id for e in streamed] == ["evt_z", "evt_a2", "evt_b", "evt_c"]
    assert all(e.payload for e in streamed)
    bounded = [
        e.event_id
        async for e in ingest_stub.StreamArchive(
            ingest_pb2.StreamArchiveRequest(
                since=Timestamp(seconds=1_700_000_020), until=Timestamp(seconds=1_700_000_030)
            )
        )
    ]
    assert bounded == ["evt_a2", "evt_b"]


async def test_republish(
    webhooks: WebhookClient, ingest_stub: ingest_pb2_grpc.IngestServiceAsyncStub
):
    await webhooks.post(event_body("evt_again"))
    answer = await ingest_stub.RepublishEvent(
        ingest_pb2.RepublishEventRequest(event_id="evt_again")
    )
    assert answer.HasField("published_at")


async def test_list_divergences(
    webhooks: WebhookClient, ingest_stub: ingest_pb2_grpc.IngestServiceAsyncStub
):
    await webhooks.post(event_body("evt_d", v=1))
    await webhooks.post(event_body("evt_d", v=2))
    await webhooks.post(event_body("evt_d", v=3))
    answer = await ingest_stub.ListDivergences(
        ingest_pb2.ListDivergencesRequest(
            event_id="evt_d", page=common_pb2.PageRequest(page_size=1)
        )
    )
    assert answer.page.total_count == 2
    assert len(answer.divergences) == 1
    assert answer.divergences[0].divergent_payload == event_body("evt_d", v=2)
    rest = await ingest_stub.ListDivergences(
        ingest_pb2.ListDivergencesRequest(
            event_id="evt_d", page=common_pb2.PageRequest(page_token=answer.page.next_page_token)
        )
    )
    assert [d.divergent_payload for d in rest.divergences] == [event_body("evt_d", v=3)]


async def test_health_and_reflection(ingest, ingest_stub):  # type: ignore[no-untyped-def]
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    # No token: health and reflection stay open (probes and tooling must reach them).
    async with aio_channel(f"127.0.0.1:{ingest.grpc.port}", token="") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(
            health_pb2.HealthCheckRequest(service="billing.ingest.v1.IngestService")
        )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = [s.name async for r in responses for s in r.list_services_response.service]
        assert "billing.ingest.v1.IngestService" in names


async def test_stream_archive_batches_match_the_event_stream(
    webhooks: WebhookClient, ingest_stub: ingest_pb2_grpc.IngestServiceAsyncStub
):
    padding = "x" * 300_000  # a few events per batch message, so batching really splits
    for i in range(9):
        await webhooks.post(body_at(f"evt_batch_{i}", 1_700_000_000 + (i * 7) % 5))
        await webhooks.post(event_body(f"evt_big_{i}", "invoice.paid", padding=padding))
    single = [e async for e in ingest_stub.StreamArchive(ingest_pb2.StreamArchiveRequest())]
    batches = [b async for b in ingest_stub.StreamArchiveBatches(ingest_pb2.StreamArchiveRequest())]
    assert len(batches) > 1
    assert all(b.ByteSize() < 4 * 1024 * 1024 for b in batches)
    flattened = [e for b in batches for e in b.events]
    assert [(e.event_id, e.payload) for e in flattened] == [(e.event_id, e.payload) for e in single]
    assert len(flattened) == 18


async def test_payload_only_batches_carry_what_a_replay_reads(
    webhooks: WebhookClient, ingest_stub: ingest_pb2_grpc.IngestServiceAsyncStub
):
    for i in range(5):
        await webhooks.post(body_at(f"evt_slim_{i}", 1_700_000_000 + (i * 3) % 4))
    full = [
        e
        async for b in ingest_stub.StreamArchiveBatches(ingest_pb2.StreamArchiveRequest())
        for e in b.events
    ]
    slim = [
        e
        async for b in ingest_stub.StreamArchiveBatches(
            ingest_pb2.StreamArchiveRequest(payload_only=True)
        )
        for e in b.events
    ]
    assert [(e.event_id, e.stripe_created_at, e.payload) for e in slim] == [
        (e.event_id, e.stripe_created_at, e.payload) for e in full
    ]
    assert len(slim) >= 5
    assert all(e.type == "" and e.payload_sha256 == "" and e.archive_seq == 0 for e in slim)
    assert all(e.type != "" and e.payload_sha256 != "" for e in full)
