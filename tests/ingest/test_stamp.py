"""The published_at stamp (issue 12, eighth pass): after a quiet spell, or once the flow of
acknowledgements pauses, it starts at once; during a steady flow at most one per interval;
each groups what was acknowledged before it; it commits without waiting for its WAL flush, on
a pooled connection it leaves as it found it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import pytest

from services.common.db import make_async_engine
from services.common.nats_link import NatsLink
from services.ingest.archive import CommittedEvent
from services.ingest.publisher import OutboxPublisher
from tests.helpers import eventually, query
from tests.ingest.test_append_only import archive


class AckingLink:
    """A NATS link whose JetStream acknowledges every message at once."""

    connected = True

    async def publish_many(self, messages: Sequence[tuple[str, bytes, str]]) -> list[bool]:
        return [True] * len(messages)


class GatedStamps(OutboxPublisher):
    """A publisher whose stamps are recorded instead of written, each held until released."""

    def __init__(self, stamp_interval: float = 0.2, stamp_idle: float = 0.01) -> None:
        super().__init__(
            cast(Any, None),
            cast(NatsLink, AckingLink()),
            stamp_interval=stamp_interval,
            stamp_idle=stamp_idle,
        )
        self.stamps: list[list[str]] = []
        self.release = asyncio.Event()

    async def _mark_published(self, event_ids: Sequence[str]) -> None:
        self.stamps.append(list(event_ids))
        await self.release.wait()


def committed(*event_ids: str) -> list[CommittedEvent]:
    return [CommittedEvent(event_id, "customer.created", b"{}") for event_id in event_ids]


async def turns(count: int = 20) -> None:
    """Let the event loop run ``count`` rounds of ready callbacks, no clock involved."""
    for _ in range(count):
        await asyncio.sleep(0)


def running(publisher: OutboxPublisher) -> list[asyncio.Task[None]]:
    """The publisher's fast path and stamper (not its sweeper: these tests have no database)."""
    return [
        asyncio.create_task(publisher._fast_path()),
        asyncio.create_task(publisher._stamp_forever()),
    ]


async def test_the_stamp_starts_at_once_and_groups_what_is_acknowledged_meanwhile() -> None:
    publisher = GatedStamps()  # the service's timing
    tasks = running(publisher)
    try:
        publisher.notify(committed("evt_a"))
        await turns()
        # Stamped within a few turns of the loop: after a quiet spell no wait before the
        # UPDATE (the fast path publishes, the stamper takes the acknowledged id at once).
        assert publisher.stamps == [["evt_a"]]
        # Acknowledged while that stamp is in flight: published in two batches ...
        publisher.notify(committed("evt_b", "evt_c"))
        await turns()
        publisher.notify(committed("evt_d"))
        await turns()
        assert publisher.stamps == [["evt_a"]]  # one stamp at a time
        publisher.release.set()
        # ... and stamped together by the next UPDATE (the flow has paused).
        await eventually(lambda: len(publisher.stamps) == 2)
        assert publisher.stamps[1] == ["evt_b", "evt_c", "evt_d"]
        await turns()
        assert len(publisher.stamps) == 2
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_steady_flow_is_stamped_per_interval_and_a_pause_at_once() -> None:
    # An interval longer than the test: only a pause can start the second stamp. The pause
    # that counts (0.5 s) is 50 times the flow's gap between acknowledgements.
    publisher = GatedStamps(stamp_interval=3600.0, stamp_idle=0.5)
    publisher.release.set()
    tasks = running(publisher)
    try:
        publisher.notify(committed("evt_first"))
        await eventually(lambda: publisher.stamps == [["evt_first"]])
        flow = [f"evt_flow_{n}" for n in range(60)]
        for event_id in flow:  # ~0.6 s of acknowledgements, one every 10 ms
            publisher.notify(committed(event_id))
            await asyncio.sleep(0.01)
        assert publisher.stamps == [["evt_first"]]  # no UPDATE while the flow goes on
        await eventually(lambda: len(publisher.stamps) == 2)  # the pause: stamped
        assert publisher.stamps[1] == flow
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# What the stamp's transaction sees: a statement trigger records synchronous_commit in it.
RECORD_SETTING = (
    "CREATE TABLE public.stamp_settings (synchronous_commit text)",
    """CREATE FUNCTION public.record_stamp_setting() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO public.stamp_settings VALUES (current_setting('synchronous_commit'));
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER record_stamp_setting AFTER UPDATE ON ingest.stripe_events"
    " FOR EACH STATEMENT EXECUTE FUNCTION public.record_stamp_setting()",
)


@pytest.mark.integration
async def test_the_stamp_commits_asynchronously_on_its_own_transaction(database_url: str) -> None:
    archive(database_url, "evt_stamp_async")
    for statement in RECORD_SETTING:
        query(database_url, statement)
    engine = make_async_engine(database_url, pool_size=1)
    try:
        publisher = OutboxPublisher(engine, cast(NatsLink, AckingLink()))
        assert await publisher.publish_batch(committed("evt_stamp_async")) == ["evt_stamp_async"]
        async with engine.connect() as conn:  # the pool's one connection, the stamp's
            after = (await conn.exec_driver_sql("SHOW synchronous_commit")).scalar_one()
    finally:
        await engine.dispose()
    # Inside the stamp's transaction: off; the connection afterwards: the server's default.
    assert query(database_url, "SELECT synchronous_commit FROM public.stamp_settings") == [("off",)]
    assert after == "on"
    stamped = query(
        database_url,
        "SELECT published_at IS NOT NULL FROM ingest.stripe_events"
        " WHERE event_id = 'evt_stamp_async'",
    )
    assert stamped == [(True,)]
