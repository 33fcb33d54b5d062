"""How far the ledger's consumer is behind JetStream, as Prometheus gauges.

An operator needs two numbers to tell "busy" from "falling behind": how many messages are
waiting (``ledger_consumer_pending_messages``: in the stream, not yet delivered;
``ledger_consumer_ack_pending_messages``: delivered, not yet applied and acknowledged), and how
old the oldest of them is (``ledger_consumer_oldest_unprojected_age_seconds``). The count alone
hides a stuck consumer during a quiet hour; the age alone hides a growing backlog.

Both come from JetStream, not from the ledger's own bookkeeping, so they stay right when
several ledger processes share the durable consumer, or when none is running: every message at
or below the consumer's ack floor is applied, and the first one after it is the oldest one
that is not (its age is measured from the time JetStream stored it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import Gauge

from services.common.nats_link import STREAM_NAME, SUBJECT_PREFIX, BrokerUnavailable, NatsLink

log = logging.getLogger(__name__)

PENDING = Gauge(
    "ledger_consumer_pending_messages",
    "Messages in STRIPE_EVENTS not yet delivered to the ledger's durable consumer",
    ["consumer"],
    multiprocess_mode="mostrecent",  # every copy reads the same JetStream numbers
)
ACK_PENDING = Gauge(
    "ledger_consumer_ack_pending_messages",
    "Messages delivered to the ledger's consumer and not yet applied (acknowledged)",
    ["consumer"],
    multiprocess_mode="mostrecent",  # every copy reads the same JetStream numbers
)
OLDEST_AGE = Gauge(
    "ledger_consumer_oldest_unprojected_age_seconds",
    "Age of the oldest message the ledger has not applied yet (0 when none is waiting)",
    ["consumer"],
    multiprocess_mode="mostrecent",  # every copy reads the same JetStream numbers
)


@dataclass(frozen=True, slots=True)
class Lag:
    pending: int
    ack_pending: int
    oldest_age_seconds: float


async def measure_lag(js: JetStreamContext, consumer: str) -> Lag:
    """The consumer's lag now (``NotFoundError`` while the durable consumer does not exist)."""
    info = await js.consumer_info(STREAM_NAME, consumer)
    pending = info.num_pending or 0
    ack_pending = info.num_ack_pending or 0
    age = 0.0
    if pending or ack_pending:
        floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
        with contextlib.suppress(NotFoundError):  # removed meanwhile (acked, or max age)
            oldest = await js.get_msg(
                STREAM_NAME, seq=floor + 1, subject=SUBJECT_PREFIX + ">", next=True
            )
            if oldest.time is not None:
                age = max(0.0, (datetime.now(UTC) - oldest.time).total_seconds())
    return Lag(pending, ack_pending, age)


class LagMonitor:
    """Samples :func:`measure_lag` every ``interval`` seconds into the gauges, until stopped."""

    def __init__(self, link: NatsLink, consumer: str, interval: float = 5.0) -> None:
        self._link = link
        self._consumer = consumer
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"ledger-lag-{self._consumer}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def sample(self) -> Lag | None:
        """One measurement into the gauges; ``None`` while NATS or the consumer is away."""
        try:
            lag = await measure_lag(self._link.jetstream, self._consumer)
        except (BrokerUnavailable, NotFoundError):
            return None
        PENDING.labels(self._consumer).set(lag.pending)
        ACK_PENDING.labels(self._consumer).set(lag.ack_pending)
        OLDEST_AGE.labels(self._consumer).set(lag.oldest_age_seconds)
        return lag

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except (NatsError, TimeoutError) as exc:  # the broker is slow or going away
                log.warning("consumer lag not measured", extra={"error": repr(exc)})
            await asyncio.sleep(self._interval)
