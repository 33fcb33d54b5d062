"""The operator-facing drift flows: "Sync with Stripe", the data-quality banner, the customer
diagnostic, and (in :mod:`.recovery`) the disaster-recovery cutoff and first-install import.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from billing.drift.v1 import drift_pb2 as pb
from billing.ledger.v1 import queries_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.grpc_errors import FailedPrecondition
from services.common.timeconv import to_timestamp
from services.drift import store
from services.drift.compare import StripeView, ledger_view
from services.drift.detector import (
    DriftDeps,
    StripeNotConfigured,
    account_customers,
    load_states,
    run_pass,
)
from services.drift.findings import MISSING_EVENT, MISSING_HISTORICAL, MISSING_UNRECOVERABLE
from services.drift.stripe_calls import RequestCount

HISTORY_GAPS = frozenset({MISSING_EVENT, MISSING_HISTORICAL, MISSING_UNRECOVERABLE})

#: The MRR consistency figures come from the ledger; the banner asks on every page, so the
#: answer is kept this long.
MRR_CACHE_SECONDS = 30.0


@dataclass(slots=True)
class SyncOutcome:
    run_id: str
    events_appended: int
    remaining: list[Any] = field(default_factory=list)
    unrecoverable_subscription_ids: list[str] = field(default_factory=list)


class DriftActions:
    def __init__(self, deps: DriftDeps) -> None:
        self.deps = deps
        self._mrr: tuple[float, queries_pb2.MrrConsistencyResponse] | None = None
        self._recovery: Any = None

    def attach_recovery(self, recovery: Any) -> None:
        """The cutoff / baseline flows (``services.drift.recovery``), wired by the app."""
        self._recovery = recovery

    async def sync_account(self, account_id: str, operator: str) -> SyncOutcome:
        """Recover the account's missing events through ingest, let the ledger replay them,
        detect again; the account counts as synced afterwards."""
        first = await run_pass(
            self.deps, account_id=account_id, trigger="sync", operator=operator or None
        )
        appended = first.counters.events_recovered
        if appended:
            await asyncio.sleep(self.deps.settle_seconds)
        second = await run_pass(
            self.deps, account_id=account_id, trigger="sync", operator=operator or None
        )
        appended += second.counters.events_recovered
        customers = await account_customers(self.deps.ledger, account_id)
        remaining = await store.open_for_accounts(self.deps.engine, {account_id, *customers})
        if not any(r.kind in HISTORY_GAPS for r in remaining):
            # The history is complete as far as Stripe can tell: the MRR trend is whole.
            async with self.deps.engine.begin() as conn:
                await store.mark_synced(conn, {account_id})
        return SyncOutcome(
            run_id=second.run_id,
            events_appended=appended,
            remaining=remaining,
            # Open gaps outside the window, whichever pass found them: the cutoff dialog's list.
            unrecoverable_subscription_ids=sorted(
                {
                    r.subscription_id
                    for r in remaining
                    if r.kind == MISSING_UNRECOVERABLE and r.subscription_id
                }
            ),
        )

    async def data_quality(self) -> pb.DataQualitySummary:
        """Drift's own tables (one statement) plus the ledger's MRR check (cached)."""
        row = await store.summary(self.deps.engine)
        mrr = await self._mrr_check()
        summary = pb.DataQualitySummary(
            accounts_with_drift=row.accounts_with_drift,
            drift_account_ids=list(row.drift_ids),
            accounts_never_synced=row.never_synced,
            never_synced_account_ids=list(row.never_synced_ids),
            mrr_consistent=mrr.consistent if mrr is not None else True,
            last_run_at=to_timestamp(row.last_run_at),
            open_discrepancies=row.open_discrepancies,
            critical_discrepancies=row.critical_discrepancies,
        )
        if mrr is not None:
            summary.kpi_mrr.CopyFrom(mrr.kpi_mrr)
            summary.trend_mrr.CopyFrom(mrr.trend_mrr)
        return summary

    async def _mrr_check(self) -> queries_pb2.MrrConsistencyResponse | None:
        now = time.monotonic()
        if self._mrr is not None and now - self._mrr[0] < MRR_CACHE_SECONDS:
            return self._mrr[1]
        response = await self.deps.ledger.CheckMrrConsistency(
            queries_pb2.CheckMrrConsistencyRequest()
        )
        self._mrr = (now, response)
        return response

    async def diagnostic(self, account_id: str) -> pb.CustomerDiagnostic:
        """Stripe's and the ledger's view of one account, field by field."""
        caller = self.deps.caller
        if caller is None:
            raise StripeNotConfigured("Stripe is not configured (STRIPE_API_KEY)")
        customers = await account_customers(self.deps.ledger, account_id)
        count = RequestCount()
        fields: list[pb.DiagnosticField] = []
        detail = None
        try:
            detail = await self.deps.ledger.GetAccount(
                queries_pb2.GetAccountRequest(account_id=account_id)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            detail = None  # a cus_ id the ledger never linked to an account: no ledger side
        primary = sorted(customers)[0]
        for customer_id in sorted(customers):
            customer = await caller.request("get", f"/v1/customers/{customer_id}", count)
            section = "customer" if customer_id == primary else f"customer:{customer_id}"
            ledger_name = detail.account.name if detail is not None else ""
            ledger_email = detail.account.email if detail is not None else ""
            fields.append(_field(section, "name", ledger_name, customer.get("name") or ""))
            fields.append(_field(section, "email", ledger_email, customer.get("email") or ""))
            pm = (customer.get("invoice_settings") or {}).get("default_payment_method")
            pm_id = pm.get("id") if isinstance(pm, dict) else (pm or "")
            fields.append(_field("payment_method", "default_payment_method", "", pm_id or ""))
            states = await load_states(self.deps.ledger, customer_id)
            subs: list[dict[str, Any]] = []
            async for page in caller.pages(
                "/v1/subscriptions",
                {"customer": customer_id, "status": "all", "expand": ["data.latest_invoice"]},
                count,
            ):
                subs.extend(page)
            for sub in subs:
                theirs = StripeView.of(sub)
                state = states.get(sub["id"])
                ours = ledger_view(state) if state is not None else None
                for name in StripeView.__slots__:
                    fields.append(
                        _field(
                            f"subscription:{sub['id']}",
                            name,
                            getattr(ours, name) if ours is not None else "",
                            getattr(theirs, name),
                        )
                    )
        # The ledger lists no payment method id: that row is informative, not a difference.
        for f in fields:
            if f.section == "payment_method":
                f.differs = False
        fetched = Timestamp()
        fetched.GetCurrentTime()
        return pb.CustomerDiagnostic(
            account_id=account_id,
            stripe_customer_id=primary,
            fields=fields,
            differences=sum(1 for f in fields if f.differs),
            fetched_at=fetched,
        )

    async def set_recovery_cutoff(
        self, request: pb.SetRecoveryCutoffRequest
    ) -> pb.SetRecoveryCutoffResponse:
        if self._recovery is None:
            raise FailedPrecondition("disaster recovery is not available in this build")
        result: pb.SetRecoveryCutoffResponse = await self._recovery.set_cutoff(request)
        return result

    async def import_baseline(self, operator: str) -> pb.ImportBaselineResponse:
        if self._recovery is None:
            raise FailedPrecondition("the baseline import is not available in this build")
        result: pb.ImportBaselineResponse = await self._recovery.import_baseline(operator)
        return result


def _field(section: str, name: str, ledger: str, stripe: str) -> pb.DiagnosticField:
    return pb.DiagnosticField(
        section=section,
        field=name,
        ledger_value=ledger,
        stripe_value=stripe,
        differs=ledger != stripe,
    )
