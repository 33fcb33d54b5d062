"""ListEvents' customer and publish-outcome filters (the back-office's webhook log by account
and outcome), and the derived ``stripe_customer_id`` column: set at archive time, backfilled
by migration 0013 with the same rule, write-once like ``published_at``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import psycopg
import pytest
from alembic import command
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc

from services.common.grpc_client import aio_channel
from services.common.migrate import alembic_config, upgrade_to_head
from services.ingest.app import IngestService
from services.ingest.envelope import customer_of
from tests.conftest import fixtures_dir
from tests.helpers import eventually, query
from tests.ingest.conftest import WebhookClient
from tests.servers import PostgresHandle, nats_server, unique_name

pytestmark = pytest.mark.integration


def about(event_id: str, data_object: dict[str, object], created: int = 1_700_000_000) -> bytes:
    return json.dumps({
        "id": event_id, "object": "event", "api_version": "2025-03-31.basil",
        "created": created, "livemode": False, "type": "invoice.paid",
        "data": {"object": data_object},
    }).encode()


#: Each shape the rule reads, and shapes it must leave alone (customer id expected).
SHAPES: list[tuple[str, dict[str, object], str | None]] = [
    ("evt_inv_a", {"object": "invoice", "id": "in_1", "customer": "cus_A"}, "cus_A"),
    ("evt_ch_a", {"object": "charge", "id": "ch_1", "customer": "cus_A"}, "cus_A"),
    ("evt_sub_b", {"object": "subscription", "id": "sub_1", "customer": "cus_B"}, "cus_B"),
    ("evt_cus_c", {"object": "customer", "id": "cus_C"}, "cus_C"),
    ("evt_expanded_b", {"object": "invoice", "id": "in_2", "customer": {"id": "cus_B"}}, "cus_B"),
    ("evt_none", {"object": "product", "id": "prod_1"}, None),
    ("evt_null", {"object": "payment_intent", "id": "pi_1", "customer": None}, None),
    ("evt_number", {"object": "charge", "id": "ch_2", "customer": 12}, None),
    ("evt_long", {"object": "charge", "id": "ch_3", "customer": "c" * 300}, None),
]


async def test_customer_and_outcome_filters(
    webhooks: WebhookClient, database_url: str, ingest_stub: ingest_pb2_grpc.IngestServiceAsyncStub
) -> None:
    for i, (event_id, obj, _) in enumerate(SHAPES):
        status, answer = await webhooks.post(about(event_id, obj, 1_700_000_000 + i))
        assert status == 200, answer
    stored = dict(
        query(database_url, "SELECT event_id, stripe_customer_id FROM ingest.stripe_events")
    )
    assert stored == {event_id: want for event_id, _, want in SHAPES}

    async def ids(**request: Any) -> list[str]:
        answer = await ingest_stub.ListEvents(ingest_pb2.ListEventsRequest(**request))
        assert answer.page.total_count == len(answer.events)
        return [e.event_id for e in answer.events]

    assert await ids(customers=["cus_A"]) == ["evt_ch_a", "evt_inv_a"]
    assert await ids(customers=["cus_B", "cus_C"]) == ["evt_expanded_b", "evt_cus_c", "evt_sub_b"]
    assert await ids(customers=["cus_B"], type="customer.created") == []
    assert await ids(customers=["cus_nobody"]) == []
    one = await ingest_stub.ListEvents(ingest_pb2.ListEventsRequest(customers=["cus_C"]))
    assert one.events[0].stripe_customer_id == "cus_C"
    await eventually(lambda: query(
        database_url, "SELECT count(*) FROM ingest.stripe_events WHERE published_at IS NULL"
    )[0][0] == 0)
    assert len(await ids(outcome=ingest_pb2.PUBLISH_OUTCOME_PUBLISHED)) == len(SHAPES)
    assert await ids(outcome=ingest_pb2.PUBLISH_OUTCOME_PENDING) == []


async def test_pending_outcome_while_nats_is_down(
    database_url: str, make_ingest: Callable[..., object]
) -> None:
    with nats_server() as broker:
        service: IngestService = await make_ingest(nats_url=broker.url)  # type: ignore[misc]
        assert await service.link.wait_connected(10)
        url = f"http://127.0.0.1:{service.http_port}/webhooks/stripe"
        async with aiohttp.ClientSession() as session, aio_channel(
            f"127.0.0.1:{service.grpc.port}"
        ) as channel:
            client = WebhookClient(session, url)
            stub = ingest_pb2_grpc.IngestServiceStub(channel)
            await client.post(about("evt_early", {"object": "charge", "customer": "cus_P"}))
            await eventually(lambda: query(
                database_url, "SELECT count(*) FROM ingest.stripe_events"
                " WHERE published_at IS NULL")[0][0] == 0)
            broker.stop()
            await client.post(about("evt_late", {"object": "charge", "customer": "cus_P"}, 5))
            await client.post(about("evt_other", {"object": "charge", "customer": "cus_Q"}, 6))
            pending = await stub.ListEvents(
                ingest_pb2.ListEventsRequest(outcome=ingest_pb2.PUBLISH_OUTCOME_PENDING)
            )
            assert [e.event_id for e in pending.events] == ["evt_other", "evt_late"]
            assert all(not e.HasField("published_at") for e in pending.events)
            mine = await stub.ListEvents(ingest_pb2.ListEventsRequest(
                customers=["cus_P"], outcome=ingest_pb2.PUBLISH_OUTCOME_PENDING))
            assert [e.event_id for e in mine.events] == ["evt_late"]
            published = await stub.ListEvents(ingest_pb2.ListEventsRequest(
                customers=["cus_P"], outcome=ingest_pb2.PUBLISH_OUTCOME_PUBLISHED))
            assert [e.event_id for e in published.events] == ["evt_early"]
            broker.start()


async def test_bad_filters_are_invalid_argument(
    ingest_stub: ingest_pb2_grpc.IngestServiceAsyncStub,
) -> None:
    bad = [
        ingest_pb2.ListEventsRequest(customers=[f"cus_{i}" for i in range(101)]),
        ingest_pb2.ListEventsRequest(customers=["cus\x00x"]),
        ingest_pb2.ListEventsRequest(customers=["c" * 256]),
        ingest_pb2.ListEventsRequest(outcome=7),  # type: ignore[arg-type]
    ]
    for request in bad:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ingest_stub.ListEvents(request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request


def test_customer_id_is_write_once(database_url: str) -> None:
    body = about("evt_once", {"object": "charge", "customer": "cus_once"})
    query(
        database_url,
        "INSERT INTO ingest.stripe_events (event_id, event_type, stripe_created_at, livemode,"
        " payload, payload_sha256, recovery_source, stripe_customer_id)"
        " VALUES ('evt_once', 'charge.succeeded', now(), false, %s, %s, 'webhook', 'cus_once')",
        (body, hashlib.sha256(body).digest()),
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        query(database_url, "UPDATE ingest.stripe_events SET stripe_customer_id = 'cus_other'")


def _fixture_payloads() -> list[bytes]:
    files = sorted(Path(fixtures_dir()).rglob("*.json"))
    assert files, "real payloads to backfill"
    return [f.read_bytes() for f in files]


def test_migration_backfills_with_the_same_rule(pg: PostgresHandle) -> None:
    """Rows archived before 0013 get the customer Python would have derived: every real
    payload of the fixtures plus the crafted shapes, and a payload jsonb refuses (NUL)."""
    url = pg.create_database(unique_name("backfill"))
    config = alembic_config(url)
    command.upgrade(config, "0013_gateway_gaps")
    command.downgrade(config, "-1")  # before 0013: the archive has no customer column yet
    payloads = _fixture_payloads() + [about(e, o) for e, o, _ in SHAPES]
    payloads.append(about("evt_nul", {"object": "charge", "customer": "cus_nul", "x": "a\u0000b"}))
    expected: dict[str, str | None] = {}
    for i, payload in enumerate(payloads):
        event_id = f"evt_backfill_{i}"
        document = json.loads(payload)
        expected[event_id] = customer_of(document["data"]["object"])
        query(
            url,
            "INSERT INTO ingest.stripe_events (event_id, event_type, stripe_created_at, livemode,"
            " payload, payload_sha256, recovery_source) VALUES (%s, %s, %s, false, %s, %s,"
            " 'webhook')",
            (event_id, document["type"], datetime.now(UTC), payload,
             hashlib.sha256(payload).digest()),
        )
    assert expected["evt_backfill_" + str(len(payloads) - 1)] == "cus_nul"
    upgrade_to_head(url)
    stored = dict(query(url, "SELECT event_id, stripe_customer_id FROM ingest.stripe_events"))
    # jsonb cannot hold a NUL: the SQL rule leaves that one row without a customer.
    expected["evt_backfill_" + str(len(payloads) - 1)] = None
    assert stored == expected
    assert sum(v is not None for v in stored.values()) > len(SHAPES), "real payloads matched"
