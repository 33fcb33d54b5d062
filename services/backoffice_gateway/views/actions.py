"""Admin actions: one function each, shared by the JSON API and the HTML forms.

Each returns an :class:`ActionResult` whose ``audit_detail`` is the one line the audit log
keeps (the Stripe or ledger id the action produced). Stripe writes go through drift's
``StripeOperations`` (idempotency keys, operator in Stripe metadata); their effects reach the
ledger through Stripe's webhooks, not through the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billing.drift.v1 import drift_pb2 as dr
from billing.ingest.v1 import ingest_pb2 as i
from billing.ledger.v1 import directory_pb2 as d
from billing.ledger.v1 import ledger_pb2 as lg
from billing.ledger.v1 import queries_pb2 as q

from services.backoffice_gateway.backends import Backends
from services.backoffice_gateway.errors import bad_request
from services.backoffice_gateway.views.common import field_money, field_time, jsonable, timestamp
from services.backoffice_gateway.views.dead_letters import dead_letter_row
from services.backoffice_gateway.views.drift import discrepancy_view, run_view

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


@dataclass(frozen=True)
class ActionResult:
    action: str
    target: str
    ok: bool
    audit_detail: str
    data: dict[str, Any] = field(default_factory=dict)


def sync_account(b: Backends, account_id: str, operator: str) -> ActionResult:
    r = b.call("drift", b.drift.SyncAccount,
               dr.SyncAccountRequest(account_id=account_id, operator=operator))
    return ActionResult(
        "sync", account_id, True,
        f"run {r.run.id}: {r.events_appended} events appended, clean={r.clean}",
        {
            "run": jsonable(run_view(r.run)),
            "events_appended": r.events_appended,
            "remaining": jsonable([discrepancy_view(x) for x in r.remaining]),
            "clean": r.clean,
            "unrecoverable_subscription_ids": list(r.unrecoverable_subscription_ids),
        },
    )


def set_recovery_cutoff(
    b: Backends, subscription_id: str, cutoff: datetime, operator: str, note: str
) -> ActionResult:
    r = b.call("drift", b.drift.SetRecoveryCutoff, dr.SetRecoveryCutoffRequest(
        subscription_id=subscription_id, cutoff=timestamp(cutoff), operator=operator, note=note))
    return ActionResult(
        "recovery_cutoff", subscription_id, True, f"snapshot {r.snapshot_id}",
        {
            "snapshot_id": r.snapshot_id,
            "cutoff": jsonable(field_time(r, "cutoff")),
            "committed_mrr": r.committed_mrr if r.HasField("committed_mrr") else None,
            "currency": r.currency,
            "discrepancies_resolved": r.discrepancies_resolved,
        },
    )


def acknowledge_drift(b: Backends, account_id: str, operator: str, note: str) -> ActionResult:
    r = b.call("drift", b.drift.AcknowledgeDrift, dr.AcknowledgeDriftRequest(
        account_id=account_id, operator=operator, note=note))
    return ActionResult(
        "acknowledge_drift", account_id, True, f"{r.acknowledged} acknowledged",
        {"acknowledged": r.acknowledged,
         "acknowledged_at": jsonable(field_time(r, "acknowledged_at"))},
    )


def run_drift_pass(b: Backends, account_id: str, operator: str) -> ActionResult:
    r = b.call("drift", b.drift.RunDriftPass,
               dr.RunDriftPassRequest(account_id=account_id, operator=operator))
    return ActionResult("drift_pass", account_id or "all", True, f"run {r.id}: {r.status}",
                        {"run": jsonable(run_view(r))})


def refund(
    b: Backends, *, account_id: str, charge_id: str, payment_intent_id: str,
    amount_minor: int | None, reason: str, operator: str, idempotency_key: str,
) -> ActionResult:
    if bool(charge_id) == bool(payment_intent_id):
        raise bad_request("give exactly one of charge_id and payment_intent_id")
    request = dr.RefundPaymentRequest(
        charge_id=charge_id, payment_intent_id=payment_intent_id, reason=reason,
        operator=operator, idempotency_key=idempotency_key, account_id=account_id,
    )
    if amount_minor is not None:
        request.amount_minor = amount_minor
    r = b.call("drift", b.operations.RefundPayment, request)
    return ActionResult(
        "refund", charge_id or payment_intent_id, True, f"refund {r.refund_id} {r.status}",
        {
            "refund_id": r.refund_id,
            "status": r.status,
            "amount": jsonable(field_money(r, "amount")),
            "refundable_after": jsonable(field_money(r, "refundable_after")),
            "idempotency_key": r.idempotency_key,
        },
    )


def _subscription_result(action: str, r: dr.SubscriptionOperationResponse) -> ActionResult:
    return ActionResult(
        action, r.subscription_id, True, f"{r.status} verified={r.verified}",
        {
            "subscription_id": r.subscription_id,
            "status": r.status,
            "cancel_at_period_end": r.cancel_at_period_end,
            "quantity": r.quantity,
            "current_period_end": jsonable(field_time(r, "current_period_end")),
            "idempotency_key": r.idempotency_key,
            "verified": r.verified,
        },
    )


def cancel(b: Backends, subscription_id: str, at_period_end: bool, reason: str, operator: str,
           idempotency_key: str) -> ActionResult:
    r = b.call("drift", b.operations.CancelSubscription, dr.CancelSubscriptionRequest(
        subscription_id=subscription_id, at_period_end=at_period_end, operator=operator,
        idempotency_key=idempotency_key, reason=reason))
    return _subscription_result("cancel", r)


def reactivate(b: Backends, subscription_id: str, operator: str,
               idempotency_key: str) -> ActionResult:
    r = b.call("drift", b.operations.ReactivateSubscription, dr.ReactivateSubscriptionRequest(
        subscription_id=subscription_id, operator=operator, idempotency_key=idempotency_key))
    return _subscription_result("reactivate", r)


def change_quantity(b: Backends, subscription_id: str, quantity: int, item_id: str,
                    operator: str, idempotency_key: str) -> ActionResult:
    r = b.call("drift", b.operations.UpdateSubscriptionQuantity,
               dr.UpdateSubscriptionQuantityRequest(
                   subscription_id=subscription_id, quantity=quantity, operator=operator,
                   idempotency_key=idempotency_key, item_id=item_id))
    return _subscription_result("quantity", r)


def suspend_tenant(b: Backends, tenant_id: str) -> ActionResult:
    """Suspend = soft-delete in the directory (the host app's tenant leaves lists and counts;
    its history is kept and reactivation restores it)."""
    t = b.call("ledger", b.directory.SoftDeleteTenant,
               d.SoftDeleteTenantRequest(tenant_id=tenant_id))
    return ActionResult("suspend_tenant", tenant_id, True, "suspended",
                        {"tenant_id": t.tenant_id,
                         "deleted_at": jsonable(field_time(t, "deleted_at"))})


def reactivate_tenant(b: Backends, tenant_id: str) -> ActionResult:
    account = b.call("ledger", b.ledger.GetAccount, q.GetAccountRequest(account_id=tenant_id))
    t = b.call("ledger", b.directory.UpsertTenant, d.UpsertTenantRequest(
        tenant_id=tenant_id, name=account.account.name or tenant_id, undelete=True))
    return ActionResult("reactivate_tenant", tenant_id, True, "reactivated",
                        {"tenant_id": t.tenant_id,
                         "deleted_at": jsonable(field_time(t, "deleted_at"))})


def revoke_user_session(b: Backends, session_id: str, operator: str) -> ActionResult:
    s = b.call("ledger", b.directory.RevokeSession, d.RevokeSessionRequest(
        session_id=session_id, reason=f"revoked by back-office operator {operator}"))
    return ActionResult("revoke_session", session_id, True, "revoked",
                        {"session_id": s.session_id,
                         "revoked_at": jsonable(field_time(s, "revoked_at"))})


def republish(b: Backends, event_id: str) -> ActionResult:
    r = b.call("ingest", b.ingest.RepublishEvent, i.RepublishEventRequest(event_id=event_id))
    return ActionResult("republish", event_id, True, "republished",
                        {"published_at": jsonable(field_time(r, "published_at"))})


def retry_dead_letter(b: Backends, dead_letter_id: int) -> ActionResult:
    r = b.call("ledger", b.ledger.RetryDeadLetter, lg.RetryDeadLetterRequest(id=dead_letter_id))
    return ActionResult(
        "retry_dead_letter", str(dead_letter_id), r.resolved,
        "resolved" if r.resolved else f"still failing: {r.error}",
        {"resolved": r.resolved, "error": r.error,
         "dead_letter": jsonable(dead_letter_row(r.dead_letter))
         if r.HasField("dead_letter") else None},
    )


def purge_dead_letters(b: Backends, ids: list[int], all_resolved: bool) -> ActionResult:
    if not ids and not all_resolved:
        raise bad_request("give ids or all_resolved=true")
    r = b.call("ledger", b.ledger.PurgeDeadLetters,
               lg.PurgeDeadLettersRequest(ids=ids, all_resolved=all_resolved))
    return ActionResult("purge_dead_letters", "dead_letters", True, f"{r.purged} purged",
                        {"purged": r.purged})
