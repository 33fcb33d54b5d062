"""``POST /webhooks/stripe``: verify, archive, then (and only then) answer 200.

Answers (Stripe retries anything that is not 2xx, for days):
- 200 archived, duplicate (same id, same bytes) or divergent (same id, other bytes: logged);
- 400 missing/invalid/stale signature, or a signed body that is not a JSON event object;
- 408 the body did not arrive within the read timeout (slow senders are cut off);
- 413 body over the size limit (1 MiB by default), answered before reading it;
- 503 the database could not commit within the deadline (nothing is acknowledged).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import web
from prometheus_client import Counter, Histogram

from services.ingest.archive import ArchiveRejected, ArchiveUnavailable, ArchiveWriter
from services.ingest.envelope import InvalidEnvelope, parse_event
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


def _answer(status: int, outcome: str, *, close: bool = False, **fields: object) -> web.Response:
    """The JSON answer; ``close`` ends the connection at once, without reading (or lingering
    on) a body the client announced but did not, or should not, send."""
    counter = _OUTCOME_COUNTERS.get(outcome)
    if counter is None:
        counter = _OUTCOME_COUNTERS[outcome] = WEBHOOKS.labels(outcome)
    counter.inc()
    response = web.Response(
        status=status,
        text=json.dumps({"outcome": outcome, **fields}),
        content_type="application/json",
    )
    if close:
        response.force_close()
    return response


def webhook_app(
    writer: ArchiveWriter,
    verifier: SignatureVerifier,
    *,
    max_body_bytes: int,
    commit_timeout: float,
    read_timeout: float = 10.0,
) -> web.Application:
    """The public webhook endpoint (nothing else is served on this port)."""

    async def receive(request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            return await _receive(request)
        finally:
            LATENCY.observe(time.perf_counter() - started)

    async def _receive(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > max_body_bytes:
            return _answer(413, "too_large", close=True, limit=max_body_bytes)
        try:
            if request.content.is_eof():  # the whole body already arrived: nothing to time
                body = await request.read()
            else:
                async with asyncio.timeout(read_timeout):
                    body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _answer(413, "too_large", close=True, limit=max_body_bytes)
        except TimeoutError:
            return _answer(408, "timeout", close=True, error="request body not received in time")
        if len(body) > max_body_bytes:
            return _answer(413, "too_large", close=True, limit=max_body_bytes)
        try:
            verifier.verify(body, request.headers.get("Stripe-Signature"))
        except SignatureRejected as exc:
            return _answer(400, "bad_signature", error=str(exc))
        try:
            event = parse_event(body)
        except InvalidEnvelope as exc:
            return _answer(400, "invalid_body", error=str(exc))
        try:
            outcome = await writer.archive(event, timeout=commit_timeout)
        except ArchiveRejected as exc:
            return _answer(400, "invalid_body", error=str(exc))
        except (ArchiveUnavailable, TimeoutError) as exc:
            log.warning(
                "webhook not archived", extra={"event_id": event.event_id, "error": repr(exc)}
            )
            return _answer(503, "unavailable", error="archive unavailable, retry later")
        return _answer(200, str(outcome), event_id=event.event_id)

    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_post(WEBHOOK_PATH, receive)
    return app
