"""Disaster recovery (``SetRecoveryCutoff``) and the first-install import (``ImportBaseline``).

Both seed the ledger from Stripe's current view of an object through the ledger's
``RecordStripeSnapshot`` (a snapshot row of its own kind, never a Stripe event; drift writes
nothing in the ledger itself), and record the cutoff in ``drift.recovery_cutoffs`` so gaps
before it stop being reported.

The import baselines every customer (listed with ``/v1/customers``: a customer without any
subscription too) and every subscription, of any status, whose history starts before the
30-day window. It is resumable: each snapshot id is derived from its object
(``baseline:<id>``); a subscription's cutoff row is written after its snapshot, so a second
run skips it (``already_done``); a baselined customer is a customer the ledger knows, so a
second run skips it too, and the ledger ignores a repeated snapshot id anyway.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import stripe
from billing.drift.v1 import drift_pb2 as pb
from billing.ingest.v1 import ingest_pb2
from billing.ledger.v1 import drift_inputs_pb2 as ledger_pb
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from services.common.grpc_errors import FailedPrecondition, InvalidArgument
from services.common.timeconv import from_timestamp
from services.drift import store
from services.drift.detector import (
    RETENTION,
    DriftDeps,
    StripeNotConfigured,
    _customer_of,
    customer_accounts,
    load_states,
)
from services.drift.findings import MISSING_HISTORICAL, MISSING_UNRECOVERABLE
from services.drift.stripe_calls import RequestCount, StripeCaller, service_error
from services.drift.tables import discrepancies, recovery_cutoffs

log = logging.getLogger(__name__)
JSON = dict[str, Any]
PROGRESS_EVERY = 100


def _ts(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


class Recovery:
    def __init__(self, deps: DriftDeps) -> None:
        self.deps = deps
        self._import_lock = asyncio.Lock()

    def _caller(self) -> StripeCaller:
        if self.deps.caller is None:
            raise StripeNotConfigured("Stripe is not configured (STRIPE_API_KEY)")
        return self.deps.caller

    async def _snapshot(
        self, snapshot_id: str, kind: str, obj: JSON, taken_at: datetime, operator: str, note: str
    ) -> ledger_pb.RecordStripeSnapshotResponse:
        response: ledger_pb.RecordStripeSnapshotResponse = (
            await self.deps.ledger.RecordStripeSnapshot(
                ledger_pb.RecordStripeSnapshotRequest(
                    snapshot_id=snapshot_id,
                    kind=kind,
                    payload=json.dumps(obj, separators=(",", ":")).encode(),
                    taken_at=_ts(taken_at),
                    operator=operator,
                    note=note,
                )
            )
        )
        return response

    async def _record_cutoff(
        self,
        subscription_id: str,
        cutoff: datetime,
        snapshot_id: str,
        operator: str,
        note: str | None,
        kind: str,
    ) -> int:
        """Store the cutoff and resolve the open gaps it covers; returns how many."""
        async with self.deps.engine.begin() as conn:
            stmt = insert(recovery_cutoffs).values(
                subscription_id=subscription_id,
                cutoff=cutoff,
                snapshot_id=snapshot_id,
                operator=operator,
                note=note,
                kind=kind,
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[recovery_cutoffs.c.subscription_id],
                    set_={
                        "cutoff": stmt.excluded.cutoff,
                        "snapshot_id": stmt.excluded.snapshot_id,
                        "operator": stmt.excluded.operator,
                        "note": stmt.excluded.note,
                        "kind": stmt.excluded.kind,
                        "created_at": func.now(),
                    },
                )
            )
            result = await conn.execute(
                update(discrepancies)
                .where(
                    discrepancies.c.subscription_id == subscription_id,
                    discrepancies.c.resolved_at.is_(None),
                    discrepancies.c.kind.in_([MISSING_HISTORICAL, MISSING_UNRECOVERABLE]),
                )
                .values(resolved_at=func.now())
            )
            await store.refresh_flags(conn)
        return result.rowcount or 0

    async def set_cutoff(
        self, request: pb.SetRecoveryCutoffRequest
    ) -> pb.SetRecoveryCutoffResponse:
        sid = request.subscription_id.strip()
        if not sid.startswith("sub_") or "/" in sid or len(sid) > 255:
            raise InvalidArgument("subscription_id must be a Stripe subscription id (sub_...)")
        operator = request.operator.strip()
        if not operator:
            raise InvalidArgument("operator is required")
        now = datetime.now(UTC)
        cutoff = from_timestamp(request.cutoff, request.HasField("cutoff")) or now
        if cutoff > now:
            raise InvalidArgument("cutoff must not be in the future")
        caller = self._caller()
        count = RequestCount()
        try:
            sub = await caller.request("get", f"/v1/subscriptions/{sid}", count)
        except stripe.StripeError as exc:  # e.g. no such subscription: NOT_FOUND, not INTERNAL
            raise service_error(exc) from exc
        snapshot_id = f"cutoff:{sid}:{uuid.uuid4().hex[:12]}"
        snap = await self._snapshot(
            snapshot_id, "cutoff", sub, cutoff, operator, request.note or "recovery cutoff"
        )
        resolved = await self._record_cutoff(
            sid, cutoff, snapshot_id, operator, request.note or None, "cutoff"
        )
        await store.audit_operation(
            self.deps.engine,
            operation="set_recovery_cutoff",
            target=sid,
            operator=operator,
            parameters={"cutoff": cutoff.isoformat(), "note": request.note or None},
            outcome="succeeded",
            error=None,
            idempotency_key=None,
            stripe_object_id=snapshot_id,
        )
        response = pb.SetRecoveryCutoffResponse(
            snapshot_id=snapshot_id,
            subscription_id=sid,
            cutoff=_ts(cutoff),
            currency=snap.currency,
            discrepancies_resolved=resolved,
        )
        if snap.HasField("committed_mrr"):
            response.committed_mrr = snap.committed_mrr
        return response

    async def import_baseline(self, operator: str) -> pb.ImportBaselineResponse:
        """Recover the 30-day window, then baseline every subscription (any status) whose
        history starts before it, and every customer the ledger does not know."""
        if self._import_lock.locked():
            raise FailedPrecondition("an import is already running")
        async with self._import_lock:
            return await self._import(operator.strip() or "import")

    async def _import(self, operator: str) -> pb.ImportBaselineResponse:
        caller = self._caller()
        count = RequestCount()
        began = time.monotonic()
        recovered = await self.deps.ingest.RecoverEvents(ingest_pb2.RecoverEventsRequest())
        log.info("baseline import: window recovered", extra={"appended": recovered.appended})
        if recovered.appended:
            await asyncio.sleep(self.deps.settle_seconds)
        states = await load_states(self.deps.ledger)
        async with self.deps.engine.connect() as conn:
            done = {
                r.subscription_id
                for r in await conn.execute(select(recovery_cutoffs.c.subscription_id))
            }
        # Both lists (every status; every customer, with a subscription or not) walk side by
        # side through the process's one token bucket.
        subs, customers = await asyncio.gather(
            _listed(caller, "/v1/subscriptions", {"status": "all"}, count),
            _listed(caller, "/v1/customers", {}, count),
        )
        newest = 0
        latest = await caller.request("get", "/v1/events", count, limit=1)
        for event in latest.get("data", []):
            newest = int(event["created"])
        window_start = (newest or int(time.time())) - RETENTION
        taken_at = datetime.now(UTC)
        result = pb.ImportBaselineResponse(events_recovered=recovered.appended)
        todo_subs: list[JSON] = []
        for sub in subs.values():
            if sub["id"] in done:
                result.already_done += 1
            elif sub["id"] not in states or int(sub.get("created") or 0) < window_start:
                todo_subs.append(sub)  # else: its whole history is inside the window
        owners = {c for c in map(_customer_of, todo_subs) if c}
        in_ledger = await customer_accounts(self.deps.ledger, {*customers, *owners})
        known = {c for c, account in in_ledger.items() if account.customer_row}
        # A customer whose history starts before the window and that the ledger does not
        # know after the window's recovery (with or without subscriptions), and the customer
        # of every subscription baselined, unless the ledger knows it.
        todo_customers = [
            cus
            for cid, cus in sorted(customers.items())
            if cid not in known and (int(cus.get("created") or 0) < window_start or cid in owners)
        ]
        for cid in sorted(owners - customers.keys() - known):  # not listed (e.g. deleted)
            todo_customers.append(await caller.request("get", f"/v1/customers/{cid}", count))
        total = len(todo_customers) + len(todo_subs)
        for cus in todo_customers:
            snap = await self._snapshot(
                f"baseline:{cus['id']}", "baseline", cus, taken_at, operator, "first install"
            )
            result.customers_baselined += int(snap.created)
            _progress(result.customers_baselined, total, count, began)
        for sub in todo_subs:
            snapshot_id = f"baseline:{sub['id']}"
            await self._snapshot(snapshot_id, "baseline", sub, taken_at, operator, "first install")
            await self._record_cutoff(sub["id"], taken_at, snapshot_id, operator, None, "baseline")
            result.subscriptions_baselined += 1
            _progress(len(todo_customers) + result.subscriptions_baselined, total, count, began)
        result.stripe_requests = count.requests
        log.info(
            "baseline import finished",
            extra={
                "subscriptions": result.subscriptions_baselined,
                "customers": result.customers_baselined,
                "customers_listed": len(customers),
                "already_done": result.already_done,
                "stripe_requests": count.requests,
            },
        )
        return result


async def _listed(
    caller: StripeCaller, path: str, params: JSON, count: RequestCount
) -> dict[str, JSON]:
    """Every object of a list endpoint, by id (a cursor moved by a concurrent change may
    list one twice)."""
    out: dict[str, JSON] = {}
    async for page in caller.pages(path, params, count):
        out.update((str(obj["id"]), obj) for obj in page)
    return out


def _progress(done: int, total: int, count: RequestCount, began: float) -> None:
    """A log line every PROGRESS_EVERY snapshots, and at the end: done/total and the rate."""
    if done % PROGRESS_EVERY and done != total:
        return
    log.info(
        "baseline import progress",
        extra={
            "done": done,
            "total": total,
            "requests_per_second": round(count.requests / max(1e-6, time.monotonic() - began), 1),
        },
    )
