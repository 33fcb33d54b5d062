"""The webhook log: ingest's archive of every Stripe event received or recovered.

Filters: Stripe type, date (Stripe ``created``), account and outcome (published, pending on
JetStream, or recovered from ``events.list``), all applied by ingest's ``ListEvents`` in one
query. The archive knows no accounts, only the Stripe customer each event is about; the ledger
maps the account to its customers (``GetAccount``), so the filter also finds the account's
events the ledger did not classify (NoOp, unsupported versions, not yet consumed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from billing.ingest.v1 import ingest_pb2 as i
from billing.ledger.v1 import queries_pb2 as q

from services.backoffice_gateway.backends import Backends
from services.backoffice_gateway.errors import ApiError
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
    stripe_customer_id: str = ""


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
        stripe_customer_id=e.stripe_customer_id,
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


_PUBLISH_OUTCOMES = {
    "published": i.PUBLISH_OUTCOME_PUBLISHED,
    "pending": i.PUBLISH_OUTCOME_PENDING,
}


def account_customers(backends: Backends, account_id: str) -> list[str]:
    """The Stripe customer ids of an account (none for an unknown one: the filter then
    matches nothing rather than failing the page)."""
    try:
        detail = backends.call(
            "ledger", backends.ledger.GetAccount, q.GetAccountRequest(account_id=account_id)
        )
    except ApiError as exc:
        if exc.status == 404:
            return []
        raise
    return list(detail.account.stripe_customer_ids)


def list_webhooks(backends: Backends, f: WebhookFilters) -> Page[WebhookRow]:
    customers: list[str] = []
    if f.account_id:
        customers = account_customers(backends, f.account_id)
        if not customers:
            return Page([], "", 0)
    answer = backends.call(
        "ingest",
        backends.ingest.ListEvents,
        i.ListEventsRequest(
            type=f.type,
            created=period(f.since, f.until),
            recovered_only=f.outcome == "recovered",
            customers=customers,
            outcome=_PUBLISH_OUTCOMES.get(f.outcome, i.PUBLISH_OUTCOME_UNSPECIFIED),
            page=page_request(f.page_size, f.page_token),
        ),
    )
    rows = [webhook_row(e) for e in answer.events]
    return Page(rows, answer.page.next_page_token, answer.page.total_count)


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
