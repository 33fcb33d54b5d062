"""A batch that changes no source row of a derived refresh skips that refresh (issue 12).

``apply_staged`` counts the rows each upsert inserted or changed; a derived refresh runs only
if one of the tables it reads changed. Applying a world's batches a second time (an
idempotent replay, or redeliveries) changes nothing and must refresh nothing; the derived
columns must still be exactly what a full refresh computes, and the query_* tables equal to
their rebuild (VerifyLedger's query-table check).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import psycopg
import pytest

from services.common.config import libpq_url
from services.ledger import projection
from services.ledger.effects import project_event
from services.ledger.projection import apply_staged, merge_effects, stage_merged
from tests.ledger.integration.ledger_helpers import world_bodies
from tests.ledger.queries.test_live_refresh import _verify

pytestmark = pytest.mark.integration

#: The derived refreshes, by the start of their statement (projection.py).
REFRESHES = {
    "accounts": "UPDATE ledger.accounts a",
    "subscriptions": "UPDATE ledger.subscriptions sub",
    "payments": "UPDATE ledger.payments p",
}


class Recording(psycopg.AsyncCursor[Any]):
    """A cursor that counts the derived refreshes it runs (the projection may be compiled by
    mypyc, whose module-level calls a monkeypatch cannot intercept; its cursor it can)."""

    calls: Counter[str] = Counter()

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        text = str(query).strip()
        for name, start in REFRESHES.items():
            if text.startswith(start):
                Recording.calls[name] += 1
        return await super().execute(query, params, **kwargs)


def _batches() -> list[list[bytes]]:
    bodies = [body for _, body in world_bodies(5, 12, 4)]
    return [bodies[i : i + 40] for i in range(0, len(bodies), 40)]


async def _apply_all(url: str, batches: list[list[bytes]]) -> int:
    """Apply each batch in its own transaction; returns the billing rows inserted."""
    applied = 0
    conn = await psycopg.AsyncConnection.connect(libpq_url(url), cursor_factory=Recording)
    async with conn:
        for batch in batches:
            staged = stage_merged(merge_effects(project_event(body) for body in batch))
            async with conn.transaction():
                result = await apply_staged(conn, staged, len(batch))
            applied += result.applied
    return applied


async def _stale_derived_rows(url: str) -> int:
    """Rows a full refresh would still change (0: every derived column is up to date)."""
    stale = 0
    conn = await psycopg.AsyncConnection.connect(libpq_url(url))
    async with conn, conn.transaction(force_rollback=True), conn.cursor() as cur:
        for statement in (
            projection.ACCOUNTS_REFRESH,
            projection.SUBSCRIPTIONS_REFRESH,
            projection.PAYMENT_INTENT_REFRESH,
            projection.PAYMENTS_REFRESH,
        ):
            await cur.execute(statement.format(s="ledger", keys="true"))  # type: ignore[arg-type]
            stale += max(cur.rowcount, 0)
    return stale


def test_a_batch_applied_again_refreshes_nothing(database_url: str) -> None:
    calls = Recording.calls
    calls.clear()
    batches = _batches()

    first = asyncio.run(_apply_all(database_url, batches))
    assert first > 0
    assert all(calls[name] > 0 for name in REFRESHES), calls  # every kind of row is there
    assert asyncio.run(_stale_derived_rows(database_url)) == 0

    calls.clear()
    again = asyncio.run(_apply_all(database_url, batches))
    assert again == 0
    assert calls == Counter()  # nothing changed, nothing refreshed
    assert asyncio.run(_stale_derived_rows(database_url)) == 0
    report = asyncio.run(_verify(database_url))
    assert report.mismatches == 0, report.sample
