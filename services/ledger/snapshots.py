"""Stripe snapshot rows: the disaster-recovery cutoff and the first-install baseline (issue 8).

When history is lost beyond Stripe's 30-day ``events.list`` window, the ledger can only start
again from Stripe's current view of an object. That view is recorded as a row of its own kind
in ``ledger.stripe_snapshots`` (append-only, with who and why) and applied to the read models
through the same resolvers and upserts as events, with the version ``(taken_at,
"snapshot:<id>")``:

* it never pretends to be a Stripe event: no ``billing_events`` row, no unsupported row;
* a later Stripe event wins over it, and an earlier one (still returned by ``events.list``,
  or replayed) cannot undo it: the read models stay order-independent;
* ``VerifyLedger`` applies the snapshots to its rebuild (:func:`apply_snapshots`), so the
  seeded rows are checked like the rest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.grpc_errors import InvalidArgument
from services.ledger.db import raw_transaction
from services.ledger.effects import BadEvent, Effects, project_document
from services.ledger.projection import apply_batch

SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9_:.-]{1,200}$")
#: The event type whose shape a snapshot's object has (what the resolvers expect).
EVENT_TYPE = {"subscription": "customer.subscription.updated", "customer": "customer.updated"}
#: The resolvers' newest family, for a customer with no archived event yet.
DEFAULT_API_VERSION = "2026-10-28.endive"


@dataclass(frozen=True, slots=True)
class Snapshot:
    snapshot_id: str
    kind: str
    object_type: str
    object_id: str
    customer_id: str | None
    taken_at: datetime
    api_version: str
    payload: bytes
    operator: str
    note: str | None


def parse_snapshot(
    snapshot_id: str,
    kind: str,
    payload: bytes,
    taken_at: datetime,
    api_version: str,
    operator: str,
    note: str,
) -> Snapshot:
    """Validate a snapshot request (``InvalidArgument`` for anything the ledger cannot use)."""
    if not SNAPSHOT_ID.match(snapshot_id):
        raise InvalidArgument("snapshot_id must be 1-200 of [A-Za-z0-9_:.-]")
    if kind not in ("cutoff", "baseline"):
        raise InvalidArgument("kind must be cutoff or baseline")
    if not operator.strip():
        raise InvalidArgument("operator is required")
    try:
        obj = json.loads(payload)
    except ValueError:
        raise InvalidArgument("payload is not JSON") from None
    if not isinstance(obj, dict) or obj.get("object") not in EVENT_TYPE:
        raise InvalidArgument("payload must be a Stripe subscription or customer object")
    object_id = obj.get("id")
    if not isinstance(object_id, str) or not object_id:
        raise InvalidArgument("payload has no id")
    customer = obj["id"] if obj["object"] == "customer" else obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return Snapshot(
        snapshot_id=snapshot_id,
        kind=kind,
        object_type=obj["object"],
        object_id=object_id,
        customer_id=customer if isinstance(customer, str) else None,
        taken_at=taken_at,
        api_version=api_version,
        payload=payload,
        operator=operator.strip(),
        note=note or None,
    )


def snapshot_effects(
    snapshot_id: str, object_type: str, payload: bytes, api_version: str, taken_at: datetime
) -> Effects:
    """The read-model rows of a snapshot (its billing and unsupported rows dropped)."""
    document: dict[str, Any] = {
        "id": f"snapshot:{snapshot_id}",
        "object": "event",
        "type": EVENT_TYPE[object_type],
        "api_version": api_version,
        "created": int(taken_at.timestamp()),
        "data": {"object": json.loads(payload)},
    }
    effects = project_document(document)
    effects.billing = None
    effects.unsupported = None
    return effects


async def _api_version(cur: psycopg.AsyncCursor[Any], customer: str | None) -> str:
    if customer:
        await cur.execute(
            "SELECT api_version FROM ledger.billing_events WHERE stripe_customer_id = %s"
            " AND api_version IS NOT NULL ORDER BY occurred_at DESC LIMIT 1",
            (customer,),
        )
        row = await cur.fetchone()
        if row:
            return str(row["api_version"])
    return DEFAULT_API_VERSION


@dataclass(frozen=True, slots=True)
class RecordResult:
    created: bool
    committed_mrr: int | None
    currency: str | None


async def record_snapshot(engine: AsyncEngine, snap: Snapshot) -> RecordResult:
    """Insert the snapshot row and apply it, in one transaction (a retry changes nothing)."""
    async with raw_transaction(engine) as conn:
        async with conn.cursor(row_factory=dict_row) as cur:
            version = snap.api_version or await _api_version(cur, snap.customer_id)
            await cur.execute(
                "INSERT INTO ledger.stripe_snapshots (snapshot_id, kind, object_type, object_id,"
                " stripe_customer_id, taken_at, api_version, payload, operator, note)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (snapshot_id) DO NOTHING",
                (
                    snap.snapshot_id,
                    snap.kind,
                    snap.object_type,
                    snap.object_id,
                    snap.customer_id,
                    snap.taken_at,
                    version,
                    snap.payload,
                    snap.operator,
                    snap.note,
                ),
            )
            created = cur.rowcount == 1
        if created:
            try:
                effects = snapshot_effects(
                    snap.snapshot_id, snap.object_type, snap.payload, version, snap.taken_at
                )
            except (BadEvent, KeyError, TypeError, ValueError) as exc:
                # The object's shape is not one the resolvers read: refused, nothing written
                # (the transaction, snapshot row included, is rolled back).
                raise InvalidArgument(f"payload is not a readable Stripe object: {exc}") from exc
            await apply_batch(conn, [effects])
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT committed_mrr, currency FROM ledger.subscriptions"
                " WHERE subscription_id = %s",
                (snap.object_id,),
            )
            row = await cur.fetchone()
    return RecordResult(
        created=created,
        committed_mrr=row["committed_mrr"] if row else None,
        currency=row["currency"] if row else None,
    )


async def apply_snapshots(conn: psycopg.AsyncConnection[Any], schema: str) -> int:
    """Apply every recorded snapshot to ``schema`` (VerifyLedger's rebuild)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT snapshot_id, object_type, payload, api_version, taken_at"
            " FROM ledger.stripe_snapshots ORDER BY taken_at, snapshot_id"
        )
        rows = await cur.fetchall()
    if rows:
        effects = [
            snapshot_effects(
                r["snapshot_id"],
                r["object_type"],
                bytes(r["payload"]),
                r["api_version"],
                r["taken_at"],
            )
            for r in rows
        ]
        await apply_batch(conn, effects, schema=schema)
    return len(rows)
