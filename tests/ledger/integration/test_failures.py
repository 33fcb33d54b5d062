"""Messages that fail: dead letters after bounded deliveries (list, retry, purge), the batch
not poisoned by them, and events of an API version no resolver accepts."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import nats as nats_client
import psycopg
import pytest
from billing.common.v1 import common_pb2
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from services.common.nats_link import subject_for
from services.devstack.embedded import EmbeddedNats
from services.ledger.app import LedgerService
from tests.helpers import eventually
from tests.ingest.conftest import WebhookClient

pytestmark = pytest.mark.integration


def event(event_id: str, api_version: str = "2020-08-27") -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": api_version,
            "created": 1_700_000_000,
            "livemode": False,
            "type": "customer.created",
            "data": {"object": {"id": f"cus_{event_id}", "object": "customer", "metadata": {}}},
        }
    ).encode()


async def rows(db: psycopg.AsyncConnection[Any], sql: str, *params: Any) -> list[tuple[Any, ...]]:
    cur = await db.execute(sql, params)  # type: ignore[arg-type]
    return [tuple(r) for r in await cur.fetchall()]


@pytest.fixture
async def publish(nats: EmbeddedNats) -> AsyncIterator[Any]:
    client = await nats_client.connect(nats.url)
    js = client.jetstream()

    async def send(subject: str, payload: bytes, msg_id: str) -> None:
        await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})

    yield send
    await client.close()


async def test_failing_messages_become_dead_letters_without_poisoning_the_batch(
    ledger: LedgerService,
    ledger_stub: ledger_pb2_grpc.LedgerServiceAsyncStub,
    db: psycopg.AsyncConnection[Any],
    publish: Any,
) -> None:
    tag = uuid.uuid4().hex[:8]
    fixable = f"evt_fixable_{tag}"
    # A database-side failure for one event (a bug to be fixed later), one unreadable message.
    await db.execute(
        "CREATE FUNCTION public.refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN IF NEW.stripe_event_id = '{fixable}' THEN RAISE EXCEPTION 'planted failure';"
        " END IF; RETURN NEW; END $$"
    )
    await db.execute(
        "CREATE TRIGGER refuse_one BEFORE INSERT ON ledger.billing_events"
        " FOR EACH ROW EXECUTE FUNCTION public.refuse_one()"
    )
    good = [f"evt_good_{tag}_{i}" for i in range(5)]
    await publish(subject_for("customer.created"), event(good[0]), good[0])
    await publish(subject_for("garbage"), b"{not json", f"evt_garbage_{tag}")
    await publish(subject_for("customer.created"), event(fixable), fixable)
    for event_id in good[1:]:
        await publish(subject_for("customer.created"), event(event_id), event_id)

    async def two_dead() -> bool:
        return len(await rows(db, "SELECT id FROM ledger.dead_letters")) == 2

    await eventually(two_dead, attempts=400)
    applied = await rows(db, "SELECT stripe_event_id FROM ledger.billing_events")
    assert {r[0] for r in applied} == set(good)  # the rest of each batch went through
    dead = await rows(
        db, "SELECT stripe_event_id, deliveries, status, subject, error FROM ledger.dead_letters"
        " ORDER BY stream_seq"
    )
    assert [(d[0], d[1], d[2]) for d in dead] == [
        (f"evt_garbage_{tag}", 3, "dead"),
        (fixable, 3, "dead"),
    ]
    assert dead[0][3] == "stripe.events.garbage" and "JSON" in dead[0][4]
    assert "planted failure" in dead[1][4]

    listed = await ledger_stub.ListDeadLetters(
        ledger_pb2.ListDeadLettersRequest(page=common_pb2.PageRequest(page_size=1))
    )
    assert listed.page.total_count == 2 and len(listed.dead_letters) == 1
    assert listed.dead_letters[0].payload == b""
    rest = await ledger_stub.ListDeadLetters(
        ledger_pb2.ListDeadLettersRequest(
            page=common_pb2.PageRequest(page_size=1, page_token=listed.page.next_page_token),
            include_payload=True,
        )
    )
    assert rest.dead_letters[0].payload == event(fixable)
    assert rest.page.next_page_token == ""
    garbage_id, fixable_id = listed.dead_letters[0].id, rest.dead_letters[0].id

    still_bad = await ledger_stub.RetryDeadLetter(ledger_pb2.RetryDeadLetterRequest(id=garbage_id))
    assert not still_bad.resolved and "JSON" in still_bad.error
    assert still_bad.dead_letter.retries == 1
    await db.execute("DROP TRIGGER refuse_one ON ledger.billing_events")
    fixed = await ledger_stub.RetryDeadLetter(ledger_pb2.RetryDeadLetterRequest(id=fixable_id))
    assert fixed.resolved and fixed.error == ""
    assert fixed.dead_letter.status == ledger_pb2.DEAD_LETTER_STATUS_RESOLVED
    found = await ledger_stub.GetBillingEvent(
        ledger_pb2.GetBillingEventRequest(stripe_event_id=fixable)
    )
    assert found.event_type == "NoOp"

    dead_only = await ledger_stub.ListDeadLetters(
        ledger_pb2.ListDeadLettersRequest(status=ledger_pb2.DEAD_LETTER_STATUS_DEAD)
    )
    assert [d.id for d in dead_only.dead_letters] == [garbage_id]

    for bad in (
        ledger_stub.RetryDeadLetter(ledger_pb2.RetryDeadLetterRequest(id=999_999)),
        ledger_stub.PurgeDeadLetters(ledger_pb2.PurgeDeadLettersRequest()),
        ledger_stub.ListDeadLetters(
            ledger_pb2.ListDeadLettersRequest(page=common_pb2.PageRequest(page_token="%%"))
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await bad
        assert error.value.code() in (
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    resolved = await ledger_stub.PurgeDeadLetters(
        ledger_pb2.PurgeDeadLettersRequest(all_resolved=True)
    )
    assert resolved.purged == 1
    by_id = await ledger_stub.PurgeDeadLetters(ledger_pb2.PurgeDeadLettersRequest(ids=[garbage_id]))
    assert by_id.purged == 1
    assert await rows(db, "SELECT id FROM ledger.dead_letters") == []


async def test_unknown_api_version_is_recorded_not_classified(
    ledger: LedgerService,
    webhook_client: WebhookClient,
    ledger_stub: ledger_pb2_grpc.LedgerServiceAsyncStub,
    db: psycopg.AsyncConnection[Any],
) -> None:
    event_id = f"evt_future_{uuid.uuid4().hex[:8]}"
    status, _ = await webhook_client.post(event(event_id, api_version="2031-01-01.zeta"))
    assert status == 200

    async def recorded() -> list[tuple[Any, ...]]:
        return await rows(
            db,
            "SELECT stripe_event_id, api_version, stripe_event_type, reason"
            " FROM ledger.unsupported_events",
        )

    found = await eventually(recorded, attempts=400)
    assert found[0][:3] == (event_id, "2031-01-01.zeta", "customer.created")
    assert "2031-01-01.zeta" in found[0][3]
    assert await rows(db, "SELECT id FROM ledger.billing_events") == []
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await ledger_stub.GetBillingEvent(
            ledger_pb2.GetBillingEventRequest(stripe_event_id=event_id)
        )
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
