"""``POST /webhooks/stripe``: verify, archive, then (and only then) answer 200.

Answers (Stripe retries anything that is not 2xx, for days):
- 200 archived, duplicate (same id, same bytes) or divergent (same id, other bytes: logged);
- 400 missing/invalid/stale signature, or a signed body that is not a JSON event object;
- 408 the body did not arrive within the read timeout (slow senders are cut off);
- 413 body over the size limit (1 MiB by default), answered before reading it;
- 503 the database could not commit within the deadline (nothing is acknowledged).

This module decides the answer; it knows no HTTP framework. services/ingest/http_server.py
carries the bytes (issue 12: aiohttp's per-request machinery was ~40% of the ingest CPU).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

import orjson
from prometheus_client import Counter, Histogram

from services.ingest.archive import (
    ArchiveOutcome,
    ArchiveRejected,
    ArchiveUnavailable,
    ArchiveWriter,
)
from services.ingest.envelope import IncomingEvent, InvalidEnvelope, parse_event
from services.ingest.signature import SignatureRejected, SignatureVerifier

log = logging.getLogger(__name__)

WEBHOOKS = Counter("ingest_webhooks_total", "Webhook deliveries by outcome", ["outcome"])
LATENCY = Histogram(
    "ingest_webhook_seconds",
    "Webhook handling time",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
WEBHOOK_PATH = "/webhooks/stripe"

# The counter of each outcome, looked up once (``labels()`` per request showed in profiles).
_OUTCOME_COUNTERS: dict[str, Counter] = {}


@dataclass(slots=True)
class Answer:
    """An HTTP answer: status, JSON body, and whether the connection ends after it (without
    reading, or lingering on, a body the client announced but did not, or should not, send)."""

    # Not frozen, as envelope.IncomingEvent (issue 12): made per webhook, never mutated.

    status: int
    body: bytes
    close: bool = False


def count(outcome: str) -> None:
    counter = _OUTCOME_COUNTERS.get(outcome)
    if counter is None:
        counter = _OUTCOME_COUNTERS[outcome] = WEBHOOKS.labels(outcome)
    counter.inc()


def answer(status: int, outcome: str, *, close: bool = False, **fields: object) -> Answer:
    """A counted webhook outcome as a JSON answer."""
    count(outcome)
    return Answer(status, json.dumps({"outcome": outcome, **fields}).encode(), close)


@dataclass(slots=True)
class Archiving:
    """A webhook whose answer waits for the archive's commit (``future``)."""

    # Not frozen, as envelope.IncomingEvent (issue 12): made per webhook, never mutated.

    event: IncomingEvent
    future: asyncio.Future[ArchiveOutcome]
    started: float


class WebhookHandler:
    """The webhook's decisions, from the received body and signature header to the answer."""

    def __init__(
        self,
        writer: ArchiveWriter,
        verifier: SignatureVerifier,
        *,
        max_body_bytes: int,
        commit_timeout: float,
    ) -> None:
        self.writer = writer
        self.verifier = verifier
        self.max_body_bytes = max_body_bytes
        self.commit_timeout = commit_timeout

    def too_large(self, started: float) -> Answer:
        return self._observed(
            started, answer(413, "too_large", close=True, limit=self.max_body_bytes)
        )

    def timed_out(self, started: float) -> Answer:
        return self._observed(
            started,
            answer(408, "timeout", close=True, error="request body not received in time"),
        )

    def receive(self, body: bytes, signature: str | None, started: float) -> Answer | Archiving:
        """Everything up to the archive: an answer at once (refused), or the pending commit.
        ``started``: ``time.perf_counter()`` when the request arrived, for the histogram."""
        if len(body) > self.max_body_bytes:
            return self.too_large(started)
        try:
            self.verifier.verify(body, signature)
        except SignatureRejected as exc:
            return self._observed(started, answer(400, "bad_signature", error=str(exc)))
        try:
            event = parse_event(body)
        except InvalidEnvelope as exc:
            return self._observed(started, answer(400, "invalid_body", error=str(exc)))
        try:
            future = self.writer.submit(event, timeout=self.commit_timeout)
        except ArchiveUnavailable as exc:
            return self._observed(started, self._unavailable(event, exc))
        return Archiving(event, future, started)

    def archived(self, pending: Archiving) -> Answer:
        """The answer once ``pending.future`` is done."""
        future = pending.future
        if future.cancelled():
            result: Answer = self._unavailable(pending.event, ArchiveUnavailable("cancelled"))
        elif (exc := future.exception()) is None:
            event_id = pending.event.event_id
            outcome = str(future.result())
            count(outcome)
            result = Answer(
                200,
                b'{"outcome":"%s","event_id":%s}' % (outcome.encode(), orjson.dumps(event_id)),
            )
        elif isinstance(exc, ArchiveRejected):
            result = answer(400, "invalid_body", error=str(exc))
        elif isinstance(exc, ArchiveUnavailable | TimeoutError):
            result = self._unavailable(pending.event, exc)
        else:  # a bug, not bad input: let it surface in the server's log
            raise exc
        return self._observed(pending.started, result)

    @staticmethod
    def _unavailable(event: IncomingEvent, exc: BaseException) -> Answer:
        log.warning("webhook not archived", extra={"event_id": event.event_id, "error": repr(exc)})
        return answer(503, "unavailable", error="archive unavailable, retry later")

    @staticmethod
    def _observed(started: float, result: Answer) -> Answer:
        LATENCY.observe(time.perf_counter() - started)
        return result
