"""The ledger reads the drift service compares with Stripe (issue 8, ``drift_inputs.proto``).

Drift owns no ledger table and never writes one; it asks the ledger, through these reads:

* every subscription's current state (status, price, quantity, period end, cancel at period
  end, scheduled change, latest invoice status, and the version ``(state_event_created,
  state_event_id)`` that produced it), streamed in keyset batches so 100,000 subscriptions
  never sit in one query result or one message;
* the Stripe object ids each read model knows (drift's resource audit: a Stripe resource the
  ledger never saw has no archived event);
* the accounts of Stripe customers (a finding about a customer none of whose
  subscriptions the ledger knows still names the account the back-office shows);
* the events the ledger could not classify (``Unclassified`` rows) or whose API version no
  resolver accepts (``unsupported_events``).

Each batch is its own short read transaction: a long pass holds no lock and no snapshot open
on the ledger's hot path between batches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

from psycopg.rows import dict_row
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger.db import raw_transaction

DEFAULT_BATCH = 1000
MAX_BATCH = 5000
#: Ids per keyed read (a page of subscriptions, the new resources of a pass).
MAX_KEYED = 10_000

#: Read model of each auditable Stripe kind: (table, key column). Identifiers only.
KNOWN_OBJECT_TABLES: dict[str, tuple[str, str]] = {
    "subscription": ("ledger.subscriptions", "subscription_id"),
    "invoice": ("ledger.payments", "invoice_id"),
    "charge": ("ledger.charges", "charge_id"),
    "refund": ("ledger.refunds", "refund_id"),
    "credit_note": ("ledger.credit_notes", "credit_note_id"),
}

# The account follows the ledger's precedence (link, then the customer's tenant, then the
# customer id itself); the payload's own tenant is not kept on the subscription row.
_STATES_SQL = """
SELECT s.subscription_id, s.stripe_customer_id,
       COALESCE(l.tenant_id, a.tenant_id, s.stripe_customer_id) AS account_id,
       s.status, s.price_id, s.plan, s.quantity, s.current_period_end,
       s.cancel_at_period_end, s.schedule_id, s.scheduled_plan,
       inv.invoice_id AS latest_invoice_id, inv.status AS latest_invoice_status,
       inv.invoice_created AS latest_invoice_created,
       s.state_event_id, s.state_event_created, s.committed_mrr, s.currency,
       s.subscribed_since
FROM ledger.subscriptions s
LEFT JOIN ledger.accounts a ON a.stripe_customer_id = s.stripe_customer_id
LEFT JOIN ledger.customer_links l ON l.stripe_customer_id = s.stripe_customer_id
LEFT JOIN LATERAL (
    SELECT p.invoice_id, p.status, p.invoice_created FROM ledger.payments p
    WHERE p.subscription_id = s.subscription_id
    ORDER BY p.invoice_created DESC NULLS LAST, p.invoice_id DESC
    LIMIT 1
) inv ON true
WHERE {where}
ORDER BY s.subscription_id
LIMIT %(limit)s
"""
_STATES_PAGE_SQL = _STATES_SQL.format(
    where="s.subscription_id > %(after)s"
    " AND (%(customer)s::text IS NULL OR s.stripe_customer_id = %(customer)s::text)"
)
_STATES_KEYED_SQL = _STATES_SQL.format(where="s.subscription_id = ANY(%(ids)s)")
_CREATED_SQL = """
SELECT subscription_id, subscribed_since FROM ledger.subscriptions
WHERE subscription_id > %(after)s
ORDER BY subscription_id
LIMIT %(limit)s
"""

# One indexed lookup per id (both tables are keyed by the customer id).
_CUSTOMER_ACCOUNTS_SQL = """
SELECT c.id AS stripe_customer_id,
       COALESCE(l.tenant_id, a.tenant_id, a.stripe_customer_id) AS account_id,
       a.stripe_customer_id IS NOT NULL AS customer_row
FROM unnest(%(ids)s::text[]) AS c(id)
LEFT JOIN ledger.accounts a ON a.stripe_customer_id = c.id
LEFT JOIN ledger.customer_links l ON l.stripe_customer_id = c.id
WHERE a.stripe_customer_id IS NOT NULL OR l.stripe_customer_id IS NOT NULL
ORDER BY c.id
"""

_UNCLASSIFIED_SQL = """
SELECT b.stripe_event_id, b.stripe_event_type, b.api_version, b.subscription_id,
       b.stripe_customer_id,
       COALESCE(l.tenant_id, b.tenant_id, a.tenant_id, b.stripe_customer_id) AS account_id,
       b.occurred_at, array_to_string(b.flags, ',') AS detail
FROM ledger.billing_events b
LEFT JOIN ledger.accounts a ON a.stripe_customer_id = b.stripe_customer_id
LEFT JOIN ledger.customer_links l ON l.stripe_customer_id = b.stripe_customer_id
WHERE b.drift_detected
ORDER BY b.occurred_at DESC, b.stripe_event_id DESC
LIMIT %(limit)s
"""

_UNSUPPORTED_SQL = """
SELECT stripe_event_id, stripe_event_type, api_version, reason, occurred_at, severity,
       resolved_family
FROM ledger.unsupported_events
ORDER BY occurred_at DESC NULLS LAST, stripe_event_id DESC
LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class DriftSignalRow:
    """One event the ledger flags for drift (named row, not a tuple)."""

    kind: str
    severity: str
    stripe_event_id: str
    stripe_event_type: str | None
    api_version: str | None
    subscription_id: str | None
    stripe_customer_id: str | None
    account_id: str | None
    detail: str
    occurred_at: datetime | None


def batch_size(requested: int) -> int:
    """The batch size of a request: 0 means the default; capped to keep messages small."""
    if requested < 0:
        raise ValueError("batch_size must be >= 0")
    return min(requested or DEFAULT_BATCH, MAX_BATCH)


async def stream_subscription_states(
    engine: AsyncEngine, customer: str | None, size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every subscription's state in ``subscription_id`` order, ``size`` rows per batch."""
    async for rows in _by_subscription_id(engine, _STATES_PAGE_SQL, {"customer": customer}, size):
        yield rows


async def subscription_states_of(engine: AsyncEngine, ids: list[str]) -> list[dict[str, Any]]:
    """The states of these subscriptions (at most ``MAX_KEYED``; unknown ids are absent)."""
    async with raw_transaction(engine) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_STATES_KEYED_SQL, {"ids": ids, "limit": len(ids)})
        return list(await cur.fetchall())


async def stream_subscription_created(
    engine: AsyncEngine, size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every subscription's id and ``subscribed_since`` (no joins), ``size`` per batch."""
    async for rows in _by_subscription_id(engine, _CREATED_SQL, {}, size):
        yield rows


async def _by_subscription_id(
    engine: AsyncEngine, sql: LiteralString, params: dict[str, Any], size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """Keyset paging of ``sql`` (which reads ``%(after)s`` and ``%(limit)s`` and orders by
    ``subscription_id``): one short transaction per batch, so a long stream holds no snapshot."""
    after = ""
    while True:
        async with raw_transaction(engine) as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, {**params, "after": after, "limit": size})
            rows = await cur.fetchall()
        if not rows:
            return
        yield rows
        if len(rows) < size:
            return
        after = rows[-1]["subscription_id"]


async def stream_known_objects(
    engine: AsyncEngine, kind: str, size: int
) -> AsyncIterator[list[str]]:
    """The ids of ``kind`` the ledger holds, in id order (``KeyError`` for an unknown kind)."""
    table, key = KNOWN_OBJECT_TABLES[kind]
    sql = (  # identifiers from KNOWN_OBJECT_TABLES only; values are parameters
        f"SELECT {key} AS id FROM {table} WHERE {key} > %(after)s "  # noqa: S608
        f"ORDER BY {key} LIMIT %(limit)s"
    )
    after = ""
    while True:
        async with raw_transaction(engine) as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, {"after": after, "limit": size})
            ids = [row["id"] for row in await cur.fetchall()]
        if not ids:
            return
        yield ids
        if len(ids) < size:
            return
        after = ids[-1]


async def known_among(engine: AsyncEngine, kind: str, ids: list[str]) -> list[str]:
    """Which of ``ids`` (at most ``MAX_KEYED``) the ledger holds for ``kind``, in id order
    (``KeyError`` for an unknown kind): one indexed lookup instead of the whole kind."""
    table, key = KNOWN_OBJECT_TABLES[kind]
    sql = (  # identifiers from KNOWN_OBJECT_TABLES only; values are parameters
        f"SELECT {key} AS id FROM {table} WHERE {key} = ANY(%(ids)s) ORDER BY {key}"  # noqa: S608
    )
    async with raw_transaction(engine) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, {"ids": ids})
        return [row["id"] for row in await cur.fetchall()]


@dataclass(frozen=True, slots=True)
class CustomerAccountRow:
    stripe_customer_id: str
    account_id: str
    customer_row: bool


async def customer_accounts(engine: AsyncEngine, ids: list[str]) -> list[CustomerAccountRow]:
    """The accounts of the customers (at most ``MAX_KEYED``) the ledger knows, named as the
    ledger names them everywhere (link, then tenant, then the customer id), in id order."""
    async with raw_transaction(engine) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_CUSTOMER_ACCOUNTS_SQL, {"ids": sorted(set(ids))})
        return [CustomerAccountRow(**row) for row in await cur.fetchall()]


async def list_drift_signals(engine: AsyncEngine, limit: int) -> list[DriftSignalRow]:
    """Unclassified billing rows (``Critical``) and unsupported-version records (their own
    severity), newest first, at most ``limit`` of each."""
    out: list[DriftSignalRow] = []
    async with raw_transaction(engine) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_UNCLASSIFIED_SQL, {"limit": limit})
        for row in await cur.fetchall():
            out.append(
                DriftSignalRow(
                    kind="UnclassifiedStripeEvent",
                    severity="Critical",
                    stripe_event_id=row["stripe_event_id"],
                    stripe_event_type=row["stripe_event_type"],
                    api_version=row["api_version"],
                    subscription_id=row["subscription_id"],
                    stripe_customer_id=row["stripe_customer_id"],
                    account_id=row["account_id"],
                    detail=row["detail"] or "changes that cannot be decomposed",
                    occurred_at=row["occurred_at"],
                )
            )
        await cur.execute(_UNSUPPORTED_SQL, {"limit": limit})
        for row in await cur.fetchall():
            family = row["resolved_family"]
            detail = row["reason"] + (f" (classified as {family})" if family else "")
            out.append(
                DriftSignalRow(
                    kind="UnsupportedStripeApiVersion",
                    severity=row["severity"],
                    stripe_event_id=row["stripe_event_id"],
                    stripe_event_type=row["stripe_event_type"],
                    api_version=row["api_version"],
                    subscription_id=None,
                    stripe_customer_id=None,
                    account_id=None,
                    detail=detail,
                    occurred_at=row["occurred_at"],
                )
            )
    return out
