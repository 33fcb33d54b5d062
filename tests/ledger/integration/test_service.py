"""The ledger service end to end: webhook -> ingest -> JetStream -> consumer -> billing_events,
GetBillingEvent, ReplayArchive, VerifyLedger, several consumers, the admin port."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import grpc
import psycopg
import pytest
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from services.common.grpc_client import aio_channel
from services.ingest.app import IngestService
from services.ledger.app import LedgerService
from services.ledger.domain import native
from services.ledger.projection import apply_batch
from services.ledger.verify import create_scratch_schema
from tests.helpers import eventually
from tests.ingest.conftest import WebhookClient
from tests.ledger.integration.conftest import post_all
from tests.ledger.integration.ledger_helpers import (
    billing_event_ids,
    renamed,
    snapshot,
    world_bodies,
)

pytestmark = pytest.mark.integration

WORLD = (7, 6, 3)  # seed, tenants, months: a few hundred events, every family of event


async def count(db: psycopg.AsyncConnection[Any], sql: str, *params: Any) -> int:
    cur = await db.execute(sql, params)  # type: ignore[arg-type]
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def first_event(bodies: tuple[tuple[str, bytes], ...], kind: str) -> tuple[str, dict[str, Any]]:
    for event_id, body in bodies:
        document = json.loads(body)
        if document["type"] == kind:
            return event_id, document
    raise AssertionError(f"no {kind} in the world")


async def test_webhooks_reach_billing_events_through_jetstream(
    ledger: LedgerService,
    webhook_client: WebhookClient,
    ledger_stub: ledger_pb2_grpc.LedgerServiceAsyncStub,
    db: psycopg.AsyncConnection[Any],
) -> None:
    bodies = renamed(world_bodies(*WORLD), uuid.uuid4().hex[:8])
    expected = billing_event_ids(bodies)
    await post_all(webhook_client, [b for _, b in bodies])
    await eventually(
        lambda: _equals(count(db, "SELECT count(*) FROM ledger.billing_events"), len(expected)),
        attempts=600,
    )
    cur = await db.execute("SELECT stripe_event_id FROM ledger.billing_events")
    assert {r[0] for r in await cur.fetchall()} == expected

    event_id, document = first_event(bodies, "customer.subscription.created")
    row = await ledger_stub.GetBillingEvent(
        ledger_pb2.GetBillingEventRequest(stripe_event_id=event_id)
    )
    sub = document["data"]["object"]
    assert row.event_type == "SubscriptionCreated"
    assert row.stripe_event_id == event_id
    assert row.subscription_id == sub["id"]
    assert row.stripe_customer_id == sub["customer"]
    assert row.account_id.startswith("tenant-")  # linked through the customer's metadata
    assert row.currency == sub["items"]["data"][0]["price"]["currency"].upper()
    assert row.occurred_at.seconds == document["created"]
    assert row.HasField("committed_mrr") and row.HasField("amount_delta")
    assert row.previous_amount == 0
    assert row.amount_delta == row.new_amount
    assert not row.committed_mrr_carried

    renewal_id = await _first_of_type(db, "SubscriptionRenewed")
    renewal = await ledger_stub.GetBillingEvent(
        ledger_pb2.GetBillingEventRequest(stripe_event_id=renewal_id)
    )
    assert renewal.committed_mrr_carried and renewal.HasField("committed_mrr")

    catalogue_id, _ = first_event(bodies, "product.created")
    for missing in (catalogue_id, "evt_never_seen"):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await ledger_stub.GetBillingEvent(
                ledger_pb2.GetBillingEventRequest(stripe_event_id=missing)
            )
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await ledger_stub.GetBillingEvent(ledger_pb2.GetBillingEventRequest())
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{ledger.admin_port}/healthz") as health,
    ):
        assert health.status == 200
    assert ledger.lag is not None
    assert await ledger.lag.sample() is not None  # the durable consumer exists by now
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{ledger.admin_port}/metrics") as metrics,
    ):
        text = await metrics.text()
        assert "ledger_consumed_messages_total" in text
        label = f'{{consumer="{ledger.settings.consumer_name}"}}'
        assert f"ledger_consumer_pending_messages{label} " in text
        assert f"ledger_consumer_oldest_unprojected_age_seconds{label} " in text
        # The form of the projection this process runs: 1 for its mode, 0 for the others.
        for mode in native.MODES:
            value = 1.0 if mode == native.STATUS.mode else 0.0
            assert f'ledger_projection_form{{mode="{mode}"}} {value}' in text


async def _equals(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def _first_of_type(db: psycopg.AsyncConnection[Any], event_type: str) -> str:
    cur = await db.execute(
        "SELECT stripe_event_id FROM ledger.billing_events WHERE event_type = %s"
        " ORDER BY occurred_at, stripe_event_id LIMIT 1",
        (event_type,),
    )
    row = await cur.fetchone()
    assert row is not None, event_type
    return str(row[0])


async def _query_tables(db: psycopg.AsyncConnection[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for table in (
        "query_accounts",
        "query_mrr_steps",
        "query_mrr_daily",
        "query_invoice_rows",
        "query_revenue_daily",
        "query_event_daily",
    ):
        cur = await db.execute(f"SELECT * FROM ledger.{table} ORDER BY 1, 2, 3")  # noqa: S608
        out[table] = await cur.fetchall()
    return out


async def test_replay_is_idempotent_and_verify_finds_planted_mismatches(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    ingest_service: IngestService,
    db: psycopg.AsyncConnection[Any],
) -> None:
    bodies = world_bodies(*WORLD)
    expected = billing_event_ids(bodies)
    await post_all(webhook_client, [b for _, b in bodies])
    service: LedgerService = await make_ledger(consume=False)  # the archive is the only input
    async with aio_channel(f"127.0.0.1:{service.grpc.port}") as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        first = await stub.ReplayArchive(ledger_pb2.ReplayArchiveRequest())
        assert first.examined == len(bodies)
        assert first.applied == len(expected)
        # Into an empty ledger the query_* triggers were deferred, then rebuilt once.
        deferred = await _query_tables(db)
        assert deferred["query_accounts"] and deferred["query_event_daily"]
        await db.execute("SELECT ledger.query_support_rebuild()")
        assert await _query_tables(db) == deferred
        marker = await db.execute("SELECT count(*) FROM ledger.query_support_deferred")
        assert await marker.fetchone() == (0,)
        second = await stub.ReplayArchive(ledger_pb2.ReplayArchiveRequest())
        assert (second.examined, second.applied) == (len(bodies), 0)

        clean = await stub.VerifyLedger(ledger_pb2.VerifyLedgerRequest())
        assert clean.mismatches == 0, clean.sample
        assert clean.examined == len(bodies)

        # A read model drifts from the archive ...
        await db.execute(
            "UPDATE ledger.subscriptions SET status = 'planted'"
            " WHERE subscription_id = (SELECT min(subscription_id) FROM ledger.subscriptions)"
        )
        drifted = await stub.VerifyLedger(ledger_pb2.VerifyLedgerRequest())
        assert drifted.mismatches == 1
        assert drifted.mismatches_by_table["subscriptions"] == 1
        assert drifted.sample[0].kind == "different"
        assert list(drifted.sample[0].columns) == ["status"]

        # ... and so does a billing event (only possible with the guard trigger disabled).
        guard = "TRIGGER billing_events_no_update"
        await db.execute(f"ALTER TABLE ledger.billing_events DISABLE {guard}")
        await db.execute(
            "UPDATE ledger.billing_events SET committed_mrr = committed_mrr + 1"
            " WHERE stripe_event_id = (SELECT min(stripe_event_id) FROM ledger.billing_events"
            " WHERE committed_mrr IS NOT NULL)"
        )
        await db.execute(f"ALTER TABLE ledger.billing_events ENABLE {guard}")
        both = await stub.VerifyLedger(ledger_pb2.VerifyLedgerRequest())
        # the query_* tables were derived from the original row: they disagree with it now
        query = {k: v for k, v in both.mismatches_by_table.items() if k.startswith("query_")}
        assert query["query_mrr_steps"] >= 1
        assert both.mismatches == 2 + sum(query.values())
        assert both.mismatches_by_table["billing_events"] == 1
        tables = {m.table: m for m in both.sample}
        assert list(tables["billing_events"].columns) == ["committed_mrr"]
    leftovers = await count(
        db, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'ledger_verify_%%'"
    )
    assert leftovers == 0  # scratch schemas are dropped


async def test_replay_without_ingest_is_unavailable(make_ledger: Callable[..., Any]) -> None:
    service: LedgerService = await make_ledger(consume=False, ingest_grpc_addr="127.0.0.1:1")
    async with aio_channel(f"127.0.0.1:{service.grpc.port}") as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.ReplayArchive(ledger_pb2.ReplayArchiveRequest())
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_two_consumers_give_the_in_order_result(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    db: psycopg.AsyncConnection[Any],
) -> None:
    bodies = renamed(world_bodies(*WORLD), uuid.uuid4().hex[:8])
    first: LedgerService = await make_ledger(batch_size=16)
    await make_ledger(batch_size=16, consumer_name=first.settings.consumer_name)
    await post_all(webhook_client, [b for _, b in bodies], concurrency=32)
    expected_rows = len(billing_event_ids(bodies))
    await eventually(
        lambda: _equals(count(db, "SELECT count(*) FROM ledger.billing_events"), expected_rows),
        attempts=600,
    )
    reference = "ledger_reference"
    async with db.transaction():
        await create_scratch_schema(db, reference)
    for start in range(0, len(bodies), 200):
        async with db.transaction():
            await apply_batch(db, [b for _, b in bodies[start : start + 200]], schema=reference)
    # The consumers may still be applying read-model rows of the last batch: wait for equality.
    expected = await snapshot(db, reference)

    async def same() -> bool:
        return await snapshot(db) == expected

    await eventually(same, attempts=200)


async def test_billing_events_are_append_only(
    database_url: str, db: psycopg.AsyncConnection[Any]
) -> None:
    bodies = world_bodies(*WORLD)
    async with db.transaction():
        await apply_batch(db, [b for _, b in bodies[:200]])
    for statement in (
        "UPDATE ledger.billing_events SET reason = 'x'",
        "DELETE FROM ledger.billing_events",
        "TRUNCATE ledger.billing_events",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await db.execute(statement)
