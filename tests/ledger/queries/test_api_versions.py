"""API-version reports (``ledger.unsupported_events``) as drift lists them (issue 7)."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from services.common.config import libpq_url
from services.common.db import make_async_engine
from services.ledger.projection import apply_batch
from services.ledger.queries.api_versions import list_api_version_reports


def body(event_id: str, api_version: str, created: int) -> bytes:
    sub: dict[str, Any] = {"id": f"sub_{event_id}", "object": "subscription", "status": "active"}
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": api_version,
            "created": created,
            "type": "customer.subscription.created",
            "data": {"object": sub},
        }
    ).encode()


async def test_reports_carry_severity_and_family(database_url: str) -> None:
    bodies = [
        body("evt_a", "2027-03-31.fig", 1_800_000_000),  # newer than every family
        body("evt_b", "2026-01-01.zinnia", 1_800_000_001),  # unknown, older: unsupported
        body("evt_c", "2026-10-28.endive", 1_800_000_002),  # known: no report
    ]
    async with (
        await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn,
        conn.transaction(),
    ):
        await apply_batch(conn, bodies)
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as sa:
            reports = await list_api_version_reports(sa)
            first_at = reports[0].occurred_at
            assert first_at is not None
            warnings = await list_api_version_reports(sa, severity="Warning")
            after = await list_api_version_reports(
                sa,
                after=(first_at, reports[0].stripe_event_id),
            )
            with pytest.raises(ValueError):
                await list_api_version_reports(sa, severity="Info")
    finally:
        await engine.dispose()
    assert [(r.stripe_event_id, r.severity, r.resolved_family) for r in reports] == [
        ("evt_a", "Warning", "endive"),
        ("evt_b", "Critical", None),
    ]
    assert all(r.kind == "UnsupportedStripeApiVersion" for r in reports)
    assert [r.stripe_event_id for r in warnings] == ["evt_a"]
    assert [r.stripe_event_id for r in after] == ["evt_b"]
