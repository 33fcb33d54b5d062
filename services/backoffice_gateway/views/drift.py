"""Drift: reconciliation runs, open discrepancies by kind and severity, acknowledged ones."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from billing.drift.v1 import drift_pb2 as dr

from services.backoffice_gateway.backends import Backends
from services.backoffice_gateway.views.common import Page, field_time, page_request

KINDS = (
    "MissingEvent",
    "MissingHistoricalEvent",
    "MissingHistoricalEventUnrecoverable",
    "UnclassifiedStripeEvent",
    "UnsupportedStripeApiVersion",
    "StripeEventPayloadDivergence",
    "SubscriptionStateMismatch",
    "ExtraEvent",
)
SEVERITIES = ("Warning", "Critical")
STATES = ("open", "acknowledged", "resolved", "all")


@dataclass(frozen=True)
class DriftRunView:
    id: str
    scope: str
    trigger: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    subscriptions_checked: int
    subscriptions_total: int
    discrepancies_found: int
    events_recovered: int
    stripe_requests: int
    errors: int
    duration_seconds: float
    error_message: str


def run_view(r: dr.DriftRun) -> DriftRunView:
    return DriftRunView(
        id=r.id,
        scope=r.scope,
        trigger=r.trigger,
        status=r.status,
        started_at=field_time(r, "started_at"),
        finished_at=field_time(r, "finished_at"),
        subscriptions_checked=r.subscriptions_checked,
        subscriptions_total=r.subscriptions_total,
        discrepancies_found=r.discrepancies_found,
        events_recovered=r.events_recovered,
        stripe_requests=r.stripe_requests,
        errors=r.errors,
        duration_seconds=r.duration_seconds,
        error_message=r.error_message,
    )


@dataclass(frozen=True)
class DiscrepancyView:
    id: str
    kind: str
    severity: str
    account_id: str
    subscription_id: str
    stripe_event_id: str
    stripe_object_id: str
    field: str
    ledger_value: str
    stripe_value: str
    detail: str
    run_id: str
    detected_at: datetime | None
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str
    acknowledgement_note: str
    state: str  # open | acknowledged | resolved


def discrepancy_view(x: dr.Discrepancy) -> DiscrepancyView:
    resolved = field_time(x, "resolved_at")
    acknowledged = field_time(x, "acknowledged_at")
    state = "resolved" if resolved else "acknowledged" if acknowledged else "open"
    return DiscrepancyView(
        id=x.id,
        kind=x.kind,
        severity=x.severity,
        account_id=x.account_id,
        subscription_id=x.subscription_id,
        stripe_event_id=x.stripe_event_id,
        stripe_object_id=x.stripe_object_id,
        field=x.field,
        ledger_value=x.ledger_value,
        stripe_value=x.stripe_value,
        detail=x.detail,
        run_id=x.run_id,
        detected_at=field_time(x, "detected_at"),
        resolved_at=resolved,
        acknowledged_at=acknowledged,
        acknowledged_by=x.acknowledged_by,
        acknowledgement_note=x.acknowledgement_note,
        state=state,
    )


def list_runs(backends: Backends, page_size: int = 20, page_token: str = "") -> Page[DriftRunView]:
    answer = backends.call(
        "drift",
        backends.drift.ListDriftRuns,
        dr.ListDriftRunsRequest(page=page_request(page_size, page_token)),
    )
    return Page(
        [run_view(r) for r in answer.runs], answer.page.next_page_token, answer.page.total_count
    )


@dataclass(frozen=True)
class DiscrepancyFilters:
    account_id: str = ""
    subscription_id: str = ""
    kind: str = ""
    severity: str = ""
    state: str = "open"
    page_size: int = 50
    page_token: str = ""


def list_discrepancies(backends: Backends, f: DiscrepancyFilters) -> Page[DiscrepancyView]:
    answer = backends.call(
        "drift",
        backends.drift.ListDiscrepancies,
        dr.ListDiscrepanciesRequest(
            account_id=f.account_id,
            subscription_id=f.subscription_id,
            kind=f.kind,
            severity=f.severity,
            include_acknowledged=f.state in ("acknowledged", "all"),
            include_resolved=f.state in ("resolved", "all"),
            page_size=f.page_size,
            page_token=f.page_token,
        ),
    )
    rows = [discrepancy_view(x) for x in answer.discrepancies]
    if f.state in ("acknowledged", "resolved"):
        rows = [r for r in rows if r.state == f.state]
    return Page(rows, answer.next_page_token, answer.total_count)


@dataclass(frozen=True)
class DriftOverview:
    runs: list[DriftRunView]
    open_by_kind: dict[str, int]
    open_by_severity: dict[str, int]
    open: list[DiscrepancyView]
    acknowledged: list[DiscrepancyView]


def drift_overview(backends: Backends, limit: int = 100) -> DriftOverview:
    """The drift page: latest runs, the open discrepancies counted by kind and severity (of
    the first ``limit``), and the acknowledged ones."""
    runs = list_runs(backends, page_size=10).items
    open_rows = list_discrepancies(backends, DiscrepancyFilters(page_size=limit)).items
    acknowledged = list_discrepancies(
        backends, DiscrepancyFilters(state="acknowledged", page_size=limit)
    ).items
    return DriftOverview(
        runs=runs,
        open_by_kind=dict(Counter(r.kind for r in open_rows)),
        open_by_severity=dict(Counter(r.severity for r in open_rows)),
        open=open_rows,
        acknowledged=acknowledged,
    )


@dataclass(frozen=True)
class DiagnosticFieldView:
    section: str
    field: str
    ledger_value: str
    stripe_value: str
    differs: bool


@dataclass(frozen=True)
class DiagnosticView:
    account_id: str
    stripe_customer_id: str
    differences: int
    fetched_at: datetime | None
    fields: list[DiagnosticFieldView]


def diagnostic(backends: Backends, account_id: str) -> DiagnosticView:
    """Stripe's view and the ledger's, side by side (the first step of "Sync with Stripe")."""
    d = backends.call("drift", backends.drift.GetCustomerDiagnostic,
                      dr.GetCustomerDiagnosticRequest(account_id=account_id))
    return DiagnosticView(
        account_id=d.account_id,
        stripe_customer_id=d.stripe_customer_id,
        differences=d.differences,
        fetched_at=field_time(d, "fetched_at"),
        fields=[DiagnosticFieldView(f.section, f.field, f.ledger_value, f.stripe_value, f.differs)
                for f in d.fields],
    )


@dataclass(frozen=True)
class OperationView:
    id: str
    operation: str
    target: str
    operator: str
    parameters_json: str
    outcome: str
    error: str
    idempotency_key: str
    created_at: datetime | None


def list_operations(backends: Backends, target: str = "", page_size: int = 50,
                    page_token: str = "") -> Page[OperationView]:
    """The Stripe operations drift performed for operators (its own audit), newest first."""
    answer = backends.call("drift", backends.operations.ListOperations,
                           dr.ListOperationsRequest(page_size=page_size, page_token=page_token,
                                                    target=target))
    return Page(
        [OperationView(o.id, o.operation, o.target, o.operator, o.parameters_json, o.outcome,
                       o.error, o.idempotency_key, field_time(o, "created_at"))
         for o in answer.operations],
        answer.next_page_token,
        len(answer.operations),
    )
