"""Recovering missed webhooks from Stripe's ``events.list``.

Stripe keeps 30 days of events. Walking that list and appending what the archive lacks turns
a lost webhook into a late one. Recovered rows say so (``recovery_source = 'events_list'``,
``recovered_at``), and the usual idempotence applies: a second run appends nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import stripe
from prometheus_client import Counter

from services.ingest.archive import ArchiveOutcome, ArchiveRejected, ArchiveWriter
from services.ingest.envelope import InvalidEnvelope, event_from_document

log = logging.getLogger(__name__)

RECOVERED = Counter("ingest_recovered_total", "Events appended from events.list")
PAGE_SIZE = 100


@dataclass(slots=True)
class RecoveryReport:
    examined: int = 0
    appended: int = 0
    appended_event_ids: list[str] = field(default_factory=list)


def concerns_customer(document: dict[str, Any], customer: str) -> bool:
    """Whether an event is about ``customer`` (its object is the customer or points to it)."""
    obj = document.get("data", {}).get("object", {})
    if not isinstance(obj, dict):
        return False
    if obj.get("object") == "customer":
        return bool(obj.get("id") == customer)
    owner = obj.get("customer")
    if isinstance(owner, dict):
        owner = owner.get("id")
    return bool(owner == customer)


def iter_event_pages(
    client: stripe.StripeClient, since: int | None
) -> Iterator[list[dict[str, Any]]]:
    """Every page of ``GET /v1/events`` created at or after ``since``, as parsed JSON."""
    params: dict[str, Any] = {"limit": PAGE_SIZE}
    if since is not None:
        params["created"] = {"gte": since}
    while True:
        response = client.raw_request("get", "/v1/events", **params)
        page = json.loads(response.body)
        data = page.get("data", [])
        yield data
        if not page.get("has_more") or not data:
            return
        params["starting_after"] = data[-1]["id"]


async def recover_events(
    client: stripe.StripeClient,
    writer: ArchiveWriter,
    *,
    since: int | None,
    customer: str | None,
) -> RecoveryReport:
    """Append every event of ``events.list`` the archive misses; returns the counts."""
    report = RecoveryReport()
    pages = iter_event_pages(client, since)
    recovered_at = datetime.now(UTC)
    while True:
        page = await asyncio.to_thread(next, pages, None)
        if page is None:
            break
        for document in page:
            if customer is not None and not concerns_customer(document, customer):
                continue
            report.examined += 1
            # events.list gives JSON, not the webhook's bytes: we archive a compact rendering.
            try:
                payload = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
                event = event_from_document(document, payload.encode())
            except (InvalidEnvelope, UnicodeEncodeError) as exc:
                log.warning("events.list returned a non-event", extra={"error": str(exc)[:200]})
                continue
            try:
                outcome = await writer.archive(
                    event, recovery_source="events_list", recovered_at=recovered_at
                )
            except ArchiveRejected as exc:
                log.warning(
                    "events.list returned an event the archive refuses",
                    extra={"event_id": event.event_id, "error": str(exc)},
                )
                continue
            if outcome is ArchiveOutcome.ARCHIVED:
                report.appended += 1
                report.appended_event_ids.append(event.event_id)
    RECOVERED.inc(report.appended)
    log.info("recovery done", extra={"examined": report.examined, "appended": report.appended})
    return report
