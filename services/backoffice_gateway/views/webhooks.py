"""The webhook log: ingest's archive of every Stripe event received or recovered.

Filters: Stripe type, date (Stripe ``created``), recovered-only, and account. The archive
knows no accounts; the account filter goes through the ledger (the account's billing events
name their Stripe events), each then read from the archive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from billing.ingest.v1 import ingest_pb2 as i
from billing.ledger.v1 import queries_pb2 as q

from services.backoffice_gateway.backends import Backends
from services.backoffice_gateway.views.common import Page, field_time, page_request, period

OUTCOMES = ("all", "published", "pending", "recovered")


@dataclass(frozen=True)
class WebhookRow:
    event_id: str
    type: str
    api_version: str
    account: str
    livemode: bool
    payload_sha256: str
    stripe_created_at: datetime | None
    received_at: datetime | None
    published_at: datetime | None
    recovered_at: datetime | None
    archive_seq: int
    outcome: str  # published | pending (not yet on the stream)
    source: str  # webhook | recovered


def webhook_row(e: i.ArchivedEvent) -> WebhookRow:
    published = field_time(e, "published_at")
    recovered = field_time(e, "recovered_at")
    return WebhookRow(
        event_id=e.event_id,
        type=e.type,
        api_version=e.api_version,
        account=e.account,
        livemode=e.livemode,
        payload_sha256=e.payload_sha256,
        stripe_created_at=field_time(e, "stripe_created_at"),
        received_at=field_time(e, "received_at"),
        published_at=published,
        recovered_at=recovered,
        archive_seq=e.archive_seq,
        outcome="published" if published is not None else "pending",
        source="recovered" if recovered is not None else "webhook",
    )


@dataclass(frozen=True)
class WebhookFilters:
    type: str = ""
    since: datetime | None = None
    until: datetime | None = None
    account_id: str = ""
    outcome: str = "all"
    page_size: int = 50
    page_token: str = ""


def list_webhooks(backends: Backends, f: WebhookFilters) -> Page[WebhookRow]:
    if f.account_id:
        return _by_account(backends, f)
    answer = backends.call(
        "ingest",
        backends.ingest.ListEvents,
        i.ListEventsRequest(
            type=f.type,
            created=period(f.since, f.until),
            recovered_only=f.outcome == "recovered",
            page=page_request(f.page_size, f.page_token),
        ),
    )
    rows = [webhook_row(e) for e in answer.events]
    return Page(_outcome(rows, f.outcome), answer.page.next_page_token, answer.page.total_count)


def _outcome(rows: list[WebhookRow], outcome: str) -> list[WebhookRow]:
    if outcome in ("published", "pending"):
        return [r for r in rows if r.outcome == outcome]
    return rows


def _by_account(backends: Backends, f: WebhookFilters) -> Page[WebhookRow]:
    events = backends.call(
        "ledger",
        backends.ledger.ListBillingEvents,
        q.ListBillingEventsRequest(
            account_id=f.account_id,
            period=period(f.since, f.until),
            include_noop=True,
            page=page_request(f.page_size, f.page_token),
        ),
    )
    rows = []
    for e in events.events:
        if f.type and e.stripe_event_type != f.type:
            continue
        archived = backends.call(
            "ingest", backends.ingest.GetEvent, i.GetEventRequest(event_id=e.stripe_event_id)
        )
        row = webhook_row(archived)
        if f.outcome == "recovered" and row.source != "recovered":
            continue
        rows.append(row)
    return Page(_outcome(rows, f.outcome), events.page.next_page_token, events.page.total_count)


@dataclass(frozen=True)
class WebhookDetail:
    event: WebhookRow
    payload: object  # the parsed JSON, or the text when it does not parse
    payload_text: str


def webhook_detail(backends: Backends, event_id: str) -> WebhookDetail:
    e = backends.call(
        "ingest",
        backends.ingest.GetEvent,
        i.GetEventRequest(event_id=event_id, include_payload=True),
    )
    text = e.payload.decode("utf-8", errors="replace")
    try:
        parsed: object = json.loads(text)
    except ValueError:
        parsed = None
    return WebhookDetail(webhook_row(e), parsed, text)
