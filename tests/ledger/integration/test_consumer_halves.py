"""A batch whose transaction fails is applied in halves, not one message at a time (issue 12).

With a backlog written 8000 messages per transaction, a one-by-one fallback would be 8000
transactions, past ``ack_wait``. Here one event of a 64-message batch fails in the database
(a planted trigger): the other 63 must be applied and acked, the culprit dead-lettered after
its deliveries, and the fallback must take about 2 log2(64) transactions, not 64.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import nats as nats_client
import psycopg
import pytest

from services.common.nats_link import subject_for
from services.devstack.embedded import EmbeddedNats
from services.ledger import consumer
from services.ledger.app import LedgerService
from services.ledger.effects import Effects
from services.ledger.projection import BatchResult
from tests.helpers import eventually

pytestmark = pytest.mark.integration


def _event(event_id: str) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2020-08-27",
            "created": 1_700_000_000,
            "livemode": False,
            "type": "customer.created",
            "data": {"object": {"id": f"cus_{event_id}", "object": "customer", "metadata": {}}},
        }
    ).encode()


async def test_a_failing_batch_is_applied_in_halves_and_only_the_culprit_fails(
    make_ledger: Callable[..., Any],
    db: psycopg.AsyncConnection[Any],
    nats: EmbeddedNats,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tag = uuid.uuid4().hex[:8]
    culprit = f"evt_culprit_{tag}"
    good = [f"evt_ok_{tag}_{i}" for i in range(63)]
    ids = [*good[:40], culprit, *good[40:]]
    await db.execute(
        "CREATE FUNCTION public.refuse_culprit() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN IF NEW.stripe_event_id = '{culprit}' THEN RAISE EXCEPTION 'planted failure';"
        " END IF; RETURN NEW; END $$"
    )
    await db.execute(
        "CREATE TRIGGER refuse_culprit BEFORE INSERT ON ledger.billing_events"
        " FOR EACH ROW EXECUTE FUNCTION public.refuse_culprit()"
    )
    try:
        client = await nats_client.connect(nats.url)
        try:  # all in the stream before the ledger starts: its first fetch takes all 64
            js = client.jetstream()
            for event_id in ids:
                await js.publish(
                    subject_for("customer.created"),
                    _event(event_id),
                    headers={"Nats-Msg-Id": event_id},
                )
        finally:
            await client.close()

        parts: list[int] = []  # the size of each fallback transaction
        real = consumer.apply_batch

        async def counting(
            conn: psycopg.AsyncConnection[Any], events: Sequence[bytes | Effects], **kw: Any
        ) -> BatchResult:
            parts.append(len(events))
            return await real(conn, events, **kw)

        monkeypatch.setattr(consumer, "apply_batch", counting)
        ledger: LedgerService = await make_ledger(batch_size=64, batch_ramp_from=0)

        async def culprit_dead() -> bool:
            cur = await db.execute(
                "SELECT deliveries FROM ledger.dead_letters WHERE stripe_event_id = %s",
                (culprit,),
            )
            return await cur.fetchone() is not None

        await eventually(culprit_dead, attempts=400)
        cur = await db.execute(
            "SELECT stripe_event_id FROM ledger.billing_events WHERE stripe_event_id = ANY(%s)",
            (ids,),
        )
        assert {r[0] for r in await cur.fetchall()} == set(good)
        assert ledger.consumer is not None and ledger.consumer.acked == len(good)
        # The first delivery: 64 -> 32 + 32 -> 16 + 16 -> ... -> 1 + 1: 2 per level, 6 levels.
        # Each redelivery of the culprit alone: one more. One by one it was 64, then 1 each.
        assert parts[0] == 32, parts
        assert len(parts) <= 2 * 6 + 2, parts
        assert parts.count(1) <= 4, parts
    finally:
        await db.execute("DROP TRIGGER refuse_culprit ON ledger.billing_events")
        await db.execute("DROP FUNCTION public.refuse_culprit()")
