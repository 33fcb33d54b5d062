"""API-version reports for drift's ``UnsupportedStripeApiVersion`` discrepancies (issue 7).

``ledger.unsupported_events`` holds one row per event whose ``api_version`` the ledger could
not place with certainty: ``Critical`` (no resolver accepts it: archived, not classified) or
``Warning`` (newer than every known family: classified with the newest resolver, the billing
row flagged ``api_version_newer_than_known``). Drift lists them through this module (or an RPC
built on it) and reports each as ``UnsupportedStripeApiVersion`` with that severity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.queries.tables import unsupported_events as ue

DRIFT_KIND = "UnsupportedStripeApiVersion"
SEVERITIES = ("Warning", "Critical")


@dataclass(frozen=True, slots=True)
class ApiVersionReport:
    """One event the ledger could not place in a known API version family."""

    stripe_event_id: str
    stripe_event_type: str | None
    api_version: str | None
    reason: str
    occurred_at: datetime | None
    severity: str
    resolved_family: str | None
    kind: str = DRIFT_KIND


async def list_api_version_reports(
    conn: AsyncConnection,
    *,
    severity: str | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 500,
) -> list[ApiVersionReport]:
    """Reports in ``(occurred_at, stripe_event_id)`` order, after the keyset ``after``.

    ``ValueError`` for a severity other than ``Warning``/``Critical`` or a non-positive limit.
    """
    if severity is not None and severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, not {severity!r}")
    if limit < 1:
        raise ValueError("limit must be positive")
    query = select(ue).order_by(ue.c.occurred_at, ue.c.stripe_event_id).limit(limit)
    if severity is not None:
        query = query.where(ue.c.severity == severity)
    if after is not None:
        query = query.where(tuple_(ue.c.occurred_at, ue.c.stripe_event_id) > tuple_(*after))
    rows = (await conn.execute(query)).mappings().all()
    return [
        ApiVersionReport(
            stripe_event_id=r["stripe_event_id"],
            stripe_event_type=r["stripe_event_type"],
            api_version=r["api_version"],
            reason=r["reason"],
            occurred_at=r["occurred_at"],
            severity=r["severity"],
            resolved_family=r["resolved_family"],
        )
        for r in rows
    ]
