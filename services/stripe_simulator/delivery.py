"""Webhook delivery with Stripe-like signing, bounded retries and seeded fault injection.

Every fault decision is made up front from ``(faults.seed, event id)``, so which events are
dropped, duplicated, altered or delayed — and the counts reported — do not depend on timing or
concurrency. Only the arrival order at the receiver can vary when ``concurrency > 1``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import aiohttp

from .signing import sign

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class DeliveryFaults:
    """Fault injection knobs (rates are per event, in [0, 1]).

    ``reorder_window``: sends are shuffled within consecutive windows of this many sends
    (0 or 1 keeps the order). ``alter_rate``: after the original, a copy with the same id but
    a changed body (see :func:`alter_body`) is delivered and signed afresh.
    """

    seed: int = 0
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    alter_rate: float = 0.0
    delay_rate: float = 0.0
    max_delay: float = 0.05
    reorder_window: int = 0


@dataclass(slots=True)
class Send:
    """One planned POST."""

    event_id: str
    body: bytes
    kind: str  # "original" | "duplicate" | "altered"
    delay: float = 0.0


@dataclass(slots=True)
class DeliveryReport:
    """Outcome counts of a delivery run (ids kept for the interesting categories)."""

    events: int = 0
    sends: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    altered: int = 0
    delayed: int = 0
    reordered: int = 0
    failed: int = 0
    retries: int = 0
    dropped_ids: list[str] = field(default_factory=list)
    duplicated_ids: list[str] = field(default_factory=list)
    altered_ids: list[str] = field(default_factory=list)
    failed_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly view (used by ``/_sim/deliver``)."""
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


def alter_body(body: bytes) -> bytes:
    """A different body for the same event id: ``data.object.metadata.sim_altered`` is set
    (or ``pending_webhooks`` bumped when the object has no metadata), then re-serialised.
    """
    from .world import serialize_event

    event = json.loads(body)
    obj = event.get("data", {}).get("object")
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        obj["metadata"] = {**obj["metadata"], "sim_altered": "true"}
    else:
        event["pending_webhooks"] = int(event.get("pending_webhooks") or 0) + 1
    return serialize_event(event)


def _plan_event(
    event_id: str, body: bytes, faults: DeliveryFaults, report: DeliveryReport
) -> list[Send]:
    rng = random.Random(f"{faults.seed}:{event_id}")
    drop, dup, alt, dly = rng.random(), rng.random(), rng.random(), rng.random()
    report.events += 1
    if drop < faults.drop_rate:
        report.dropped += 1
        report.dropped_ids.append(event_id)
        return []
    delay = rng.uniform(0, faults.max_delay) if dly < faults.delay_rate else 0.0
    if delay:
        report.delayed += 1
    out = [Send(event_id, body, "original", delay)]
    if dup < faults.duplicate_rate:
        report.duplicated += 1
        report.duplicated_ids.append(event_id)
        out.append(Send(event_id, body, "duplicate"))
    if alt < faults.alter_rate:
        report.altered += 1
        report.altered_ids.append(event_id)
        out.append(Send(event_id, alter_body(body), "altered"))
    return out


def plan_sends(
    events: Iterable[tuple[str, bytes]], faults: DeliveryFaults, report: DeliveryReport
) -> Iterator[Send]:
    """Decide, deterministically, what will be POSTed and in which order.

    Lazy (buffers one reorder window at most), so huge streams can be delivered.
    """
    window = faults.reorder_window if faults.reorder_window > 1 else 1
    shuffle_rng = random.Random(f"{faults.seed}:reorder")
    buf: list[Send] = []

    def flush() -> list[Send]:
        chunk = buf[:]
        buf.clear()
        if window > 1:
            before = chunk[:]
            shuffle_rng.shuffle(chunk)
            report.reordered += sum(1 for a, b in zip(before, chunk, strict=True) if a is not b)
        return chunk

    for event_id, body in events:
        for send in _plan_event(event_id, body, faults, report):
            buf.append(send)
            if len(buf) >= window:
                yield from flush()
    yield from flush()


class WebhookDeliverer:
    """POSTs event bodies to one endpoint, signed like Stripe, with bounded retries.

    Stripe retries failed deliveries for days with exponential backoff; tests need the same
    behaviour in milliseconds, hence ``max_attempts`` and ``backoff_*``.
    """

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        concurrency: int = 8,
        faults: DeliveryFaults | None = None,
        max_attempts: int = 4,
        backoff_base: float = 0.02,
        backoff_max: float = 0.5,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self._secret = secret
        self.concurrency = max(1, concurrency)
        self.faults = faults or DeliveryFaults()
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.clock = clock

    def __repr__(self) -> str:  # never show the secret
        return f"WebhookDeliverer(url={self.url!r}, concurrency={self.concurrency})"

    def headers(self, body: bytes) -> dict[str, str]:
        """Headers of one attempt (a fresh signature per attempt, as Stripe does)."""
        return {
            "Content-Type": CONTENT_TYPE,
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(body, self._secret, int(self.clock())),
        }

    async def _post(
        self, session: aiohttp.ClientSession, send: Send, report: DeliveryReport
    ) -> None:
        if send.delay:
            await asyncio.sleep(send.delay)
        for attempt in range(self.max_attempts):
            if attempt:
                report.retries += 1
                await asyncio.sleep(min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))
            report.sends += 1
            try:
                async with session.post(
                    self.url, data=send.body, headers=self.headers(send.body)
                ) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        report.delivered += 1
                        return
                    log.debug("webhook %s answered %s", send.event_id, resp.status)
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.debug("webhook %s failed: %s", send.event_id, exc)
        report.failed += 1
        report.failed_ids.append(send.event_id)

    async def deliver(self, events: Iterable[tuple[str, bytes]]) -> DeliveryReport:
        """Deliver ``(event id, body)`` pairs; returns the counts."""
        report = DeliveryReport()
        sends = plan_sends(events, self.faults, report)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

            async def worker() -> None:
                # Workers share one lazy plan: with concurrency 1 the order is exact.
                for send in sends:
                    await self._post(session, send, report)

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        log.info(
            "delivered %d sends to %s (dropped=%d duplicated=%d altered=%d failed=%d)",
            report.delivered,
            self.url,
            report.dropped,
            report.duplicated,
            report.altered,
            report.failed,
        )
        return report

    def deliver_sync(self, events: Iterable[tuple[str, bytes]]) -> DeliveryReport:
        """Blocking wrapper for scripts (must not be called from a running event loop)."""
        return asyncio.run(self.deliver(events))
