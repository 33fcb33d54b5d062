"""One bad event gets its own 400 and never fails the webhooks committed alongside it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.ingest.app import IngestService
from services.ingest.archive import ArchiveOutcome, ArchiveRejected
from services.ingest.envelope import IncomingEvent, parse_event
from tests.helpers import query
from tests.ingest.conftest import WebhookClient, event_body

pytestmark = pytest.mark.integration

BAD_VALUES = ["evt_\u0000nul", "evt_\ud800lone"]
ENVELOPE_FIELDS = ["id", "type", "account", "api_version"]


def bad_body(field: str, value: str, n: int) -> bytes:
    document = json.loads(event_body(f"evt_bad_{field}_{n}"))
    document[field] = value if field != "id" else value + str(n)
    return json.dumps(document).encode()  # ASCII: \u0000 and \ud800 as JSON escapes


async def test_bad_envelope_values_get_400_and_spare_batch_mates(
    webhooks: WebhookClient, database_url: str
) -> None:
    good = [event_body(f"evt_good_{i}") for i in range(120)]
    bad = [
        bad_body(field, value, n)
        for n, (field, value) in enumerate((f, v) for f in ENVELOPE_FIELDS for v in BAD_VALUES)
    ]
    bodies = good[:60] + bad + good[60:]
    answers = await asyncio.gather(*(webhooks.post(body) for body in bodies))
    by_body = dict(zip(bodies, answers, strict=True))
    for body in good:
        assert by_body[body][0] == 200, by_body[body]
    for body in bad:
        status, answer = by_body[body]
        assert status == 400, answer
        assert answer["outcome"] == "invalid_body"
        assert "NUL" in str(answer["error"]) or "surrogate" in str(answer["error"])
    stored = {row[0] for row in query(database_url, "SELECT event_id FROM ingest.stripe_events")}
    assert stored == {f"evt_good_{i}" for i in range(120)}


def _event(event_id: str) -> IncomingEvent:
    return parse_event(event_body(event_id))


async def test_failed_batch_is_retried_per_event(ingest: IngestService, database_url: str):
    """The database refuses one event of a group commit: only that one is rejected."""
    # Bypass the envelope check, as a value the database refuses for another reason would.
    poisoned = replace(_event("evt_poison"), account="acct_\u0000")
    good = [_event(f"evt_mate_{i}") for i in range(30)]
    results = await asyncio.gather(
        *(ingest.writer.archive(e) for e in [*good[:15], poisoned, *good[15:]]),
        return_exceptions=True,
    )
    assert isinstance(results[15], ArchiveRejected)
    assert [r for i, r in enumerate(results) if i != 15] == [ArchiveOutcome.ARCHIVED] * 30
    stored = {row[0] for row in query(database_url, "SELECT event_id FROM ingest.stripe_events")}
    assert stored == {f"evt_mate_{i}" for i in range(30)}
    assert poisoned.stripe_created_at <= datetime.now(UTC)
    assert hashlib.sha256(poisoned.payload).digest() == poisoned.payload_sha256
