"""Admin actions as HTML forms: every one posts the session's CSRF token (checked by the
auth middleware before any handler runs), is refused with 403 for viewers (``admin_required``
on the form and on the post, so a forced URL is refused too), runs the shared action function
of ``views.actions`` inside ``audit.audited`` (who, what, target, parameters, result) and
shows its outcome.

"Sync with Stripe" takes two steps: the first shows what Stripe and the ledger each hold for
the account (drift's customer diagnostic), the second runs the sync and shows what it found;
when it reports gaps outside Stripe's 30-day event window the disaster-recovery cutoff dialog
is shown for those subscriptions.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import request

from services.backoffice_gateway.audit import audited
from services.backoffice_gateway.auth.decorators import admin_required, login_required
from services.backoffice_gateway.auth.middleware import client_ip
from services.backoffice_gateway.auth.principal import current_principal
from services.backoffice_gateway.context import gateway
from services.backoffice_gateway.errors import ApiError, bad_request, forbidden, not_found
from services.backoffice_gateway.formatting import Amount
from services.backoffice_gateway.pages import bp, urls
from services.backoffice_gateway.pages.render import page, require_billing
from services.backoffice_gateway.views import accounts as acc
from services.backoffice_gateway.views import actions as act
from services.backoffice_gateway.views import drift as drift_views
from services.backoffice_gateway.views import invoices as inv

MAX_FIELD = 500
F = TypeVar("F", bound=Callable[..., Any])


def _form(name: str, default: str = "") -> str:
    value = request.form.get(name, default)
    if len(value) > MAX_FIELD or "\x00" in value:
        raise bad_request(f"{name}: malformed", parameter=name)
    return value.strip()


def admin_post(action: str) -> Callable[[F], F]:
    """``admin_required`` for the posts, plus the audit of a refusal: a viewer forcing an
    admin action gets 403 and the attempt is logged as ``refused`` (as the API does)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is not None and not principal.is_admin:
                target = "/".join(str(v) for v in kwargs.values()) or action
                with audited(gateway().store, principal, action, target, {}, client_ip()):
                    raise forbidden()
            return view(*args, **kwargs)

        return login_required(cast(F, wrapper))

    return decorate


def _operator() -> str:
    principal = current_principal()
    assert principal is not None  # admin_required ran first
    return principal.username


def _run(
    action: str, target: str, params: dict[str, Any], call: Callable[[], act.ActionResult]
) -> tuple[act.ActionResult | None, ApiError | None]:
    """Run one admin action audited; a refused or failed action is shown, not raised."""
    gw = gateway()
    try:
        with audited(gw.store, current_principal(), action, target, params, client_ip()) as out:
            result = call()
            out.detail = result.audit_detail
        gw.banners.clear()  # a sync or acknowledgement changes the banners at once
        return result, None
    except ApiError as exc:
        return None, exc


def _done(
    title: str,
    back: str,
    result: act.ActionResult | None,
    error: ApiError | None,
    **extra: Any,
) -> tuple[str, int]:
    status = 200 if error is None else error.status
    return page(
        "action_done.html", title=title, back=back, result=result, error=error, **extra
    ), status


def _detail(account_id: str) -> acc.AccountDetailView:
    require_billing()
    urls.path_id(account_id)
    return acc.account_detail(gateway().backends, account_id)


def _key() -> str:
    """A fresh idempotency key per rendered form: a double submit is one Stripe write."""
    return secrets.token_hex(16)


# ------------------------------------------------------------------ sync with Stripe


@bp.get("/accounts/<account_id>/sync")
@admin_required
def sync_preview(account_id: str) -> str:
    """Step 1: what each side holds, before anything is written."""
    detail = _detail(account_id)
    gw = gateway()
    diagnostic = None
    error = None
    try:
        diagnostic = drift_views.diagnostic(gw.backends, account_id)
    except ApiError as exc:
        error = exc
    return page("sync.html", detail=detail, diagnostic=diagnostic, error=error)


@bp.post("/accounts/<account_id>/sync")
@admin_post("sync")
def sync_run(account_id: str) -> tuple[str, int]:
    """Step 2: recover, replay, detect again; show what it found (and the cutoff dialog)."""
    detail = _detail(account_id)
    result, error = _run(
        "sync",
        account_id,
        {},
        lambda: act.sync_account(gateway().backends, account_id, _operator()),
    )
    return _done(
        "Sync with Stripe",
        f"/accounts/{account_id}",
        result,
        error,
        detail=detail,
        kind="sync",
        today=datetime.now(UTC).date().isoformat(),
    )


@bp.post("/accounts/<account_id>/cutoff")
@admin_post("recovery_cutoff")
def recovery_cutoff(account_id: str) -> tuple[str, int]:
    detail = _detail(account_id)
    subscription_id = _form("subscription_id")
    raw = _form("cutoff")
    note = _form("note")
    if _form("confirm") != "yes":
        raise bad_request("confirm the cutoff: history before it is replaced by a snapshot")
    try:
        cutoff = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise bad_request("cutoff: expected YYYY-MM-DD", parameter="cutoff") from None
    result, error = _run(
        "recovery_cutoff",
        subscription_id,
        {"cutoff": raw, "note": note, "account_id": account_id},
        lambda: act.set_recovery_cutoff(
            gateway().backends, subscription_id, cutoff, _operator(), note
        ),
    )
    return _done(
        "Disaster-recovery cutoff", f"/accounts/{account_id}", result, error, detail=detail
    )


@bp.post("/accounts/<account_id>/acknowledge")
@admin_post("acknowledge_drift")
def acknowledge(account_id: str) -> tuple[str, int]:
    detail = _detail(account_id)
    note = _form("note")
    result, error = _run(
        "acknowledge_drift",
        account_id,
        {"note": note},
        lambda: act.acknowledge_drift(gateway().backends, account_id, _operator(), note),
    )
    return _done("Acknowledge drift", f"/accounts/{account_id}", result, error, detail=detail)


# ------------------------------------------------------------------ refunds


def refundable_invoices(account_id: str) -> list[dict[str, Any]]:
    """Paid invoices of the account, each with the payment a refund names and what is still
    refundable on it (the ledger's figures: amount paid minus what was refunded)."""
    gw = gateway()
    rows = inv.list_invoices(
        gw.backends,
        inv.InvoiceFilters(account_id=account_id, lens="invoices", page_size=200),
    ).items
    result = []
    for row in rows:
        if row.amount_paid is None or row.amount_paid.amount_minor <= 0:
            continue
        currency = row.amount_paid.currency
        left = row.refundable.amount_minor if row.refundable is not None else 0
        result.append(
            {
                "invoice": row,
                "refundable": Amount(left, currency),
                "refunded": Amount(row.amount_paid.amount_minor - left, currency),
            }
        )
    return result


@bp.get("/accounts/<account_id>/refund")
@admin_required
def refund_form(account_id: str) -> str:
    """The refund form; ``?invoice=<id>`` (the Invoices tab's "Refund" action) prefills the
    invoice's payment and shows its refundable amount."""
    detail = _detail(account_id)
    invoices = refundable_invoices(account_id)
    wanted = urls.arg("invoice")
    selected = next((x for x in invoices if x["invoice"].invoice_id == wanted), None)
    if wanted and selected is None:
        raise not_found("invoice: not a paid invoice of this account")
    return page(
        "refund.html",
        detail=detail,
        invoices=invoices,
        selected=selected,
        reasons=act.REFUND_REASONS,
        idempotency_key=_key(),
        error=None,
    )


@bp.post("/accounts/<account_id>/refund")
@admin_post("refund")
def refund_submit(account_id: str) -> tuple[str, int]:
    detail = _detail(account_id)
    payment = _form("payment_id")
    mode = _form("mode", "full")
    reason = _form("reason")
    if reason and reason not in act.REFUND_REASONS:
        raise bad_request("reason: unknown value", parameter="reason")
    amount: int | None = None
    if mode == "partial":
        raw = _form("amount_minor")
        if not raw.isdigit() or int(raw) <= 0 or len(raw) > 15:
            raise bad_request(
                "amount_minor: a positive whole number of minor units", parameter="amount_minor"
            )
        amount = int(raw)
    elif mode != "full":
        raise bad_request("mode: full or partial", parameter="mode")
    charge = payment if payment.startswith(("ch_", "py_")) else ""
    intent = payment if payment.startswith("pi_") else ""
    if not charge and not intent:
        raise bad_request(
            "payment_id: a charge (ch_...) or payment intent (pi_...) id", parameter="payment_id"
        )
    key = _form("idempotency_key") or _key()
    result, error = _run(
        "refund",
        payment,
        {"amount_minor": amount, "reason": reason, "account_id": account_id},
        lambda: act.refund(
            gateway().backends,
            account_id=account_id,
            charge_id=charge,
            payment_intent_id=intent,
            amount_minor=amount,
            reason=reason,
            operator=_operator(),
            idempotency_key=key,
        ),
    )
    return _done("Refund", f"/accounts/{account_id}?tab=invoices", result, error, detail=detail)


# ------------------------------------------------------------------ subscriptions


def _subscription(detail: acc.AccountDetailView) -> str:
    wanted = _form("subscription_id")
    known = {s.subscription_id for s in detail.subscriptions}
    if wanted not in known:
        raise bad_request(
            "subscription_id: not a subscription of this account", parameter="subscription_id"
        )
    return wanted


@bp.get("/accounts/<account_id>/manage")
@admin_required
def manage_form(account_id: str) -> str:
    """Cancel, change quantity, reactivate: one form per live subscription."""
    detail = _detail(account_id)
    return page("manage.html", detail=detail, idempotency_key=_key())


@bp.post("/accounts/<account_id>/cancel")
@admin_post("cancel")
def cancel(account_id: str) -> tuple[str, int]:
    detail = _detail(account_id)
    subscription_id = _subscription(detail)
    when = _form("when", "period_end")
    if when not in ("period_end", "now"):
        raise bad_request("when: period_end or now", parameter="when")
    reason = _form("reason")
    key = _form("idempotency_key") or _key()
    result, error = _run(
        "cancel",
        subscription_id,
        {"when": when, "reason": reason, "account_id": account_id},
        lambda: act.cancel(
            gateway().backends, subscription_id, when == "period_end", reason, _operator(), key
        ),
    )
    return _done("Cancel subscription", f"/accounts/{account_id}", result, error, detail=detail)


@bp.post("/accounts/<account_id>/quantity")
@admin_post("quantity")
def quantity(account_id: str) -> tuple[str, int]:
    detail = _detail(account_id)
    subscription_id = _subscription(detail)
    raw = _form("quantity")
    if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        raise bad_request("quantity: a whole number from 1", parameter="quantity")
    key = _form("idempotency_key") or _key()
    result, error = _run(
        "quantity",
        subscription_id,
        {"quantity": int(raw), "account_id": account_id},
        lambda: act.change_quantity(
            gateway().backends, subscription_id, int(raw), "", _operator(), key
        ),
    )
    return _done("Change quantity", f"/accounts/{account_id}", result, error, detail=detail)


@bp.post("/accounts/<account_id>/reactivate")
@admin_post("reactivate")
def reactivate(account_id: str) -> tuple[str, int]:
    detail = _detail(account_id)
    subscription_id = _subscription(detail)
    key = _form("idempotency_key") or _key()
    result, error = _run(
        "reactivate",
        subscription_id,
        {"account_id": account_id},
        lambda: act.reactivate(gateway().backends, subscription_id, _operator(), key),
    )
    return _done("Reactivate subscription", f"/accounts/{account_id}", result, error, detail=detail)


@bp.post("/accounts/<account_id>/tenant")
@admin_post("tenant")
def tenant_state(account_id: str) -> tuple[str, int]:
    detail = _detail(account_id)
    tenant = detail.account.tenant_id
    if not tenant:
        raise bad_request("this account has no tenant in the directory")
    op = _form("op")
    if op == "suspend":
        result, error = _run(
            "suspend_tenant", tenant, {}, lambda: act.suspend_tenant(gateway().backends, tenant)
        )
    elif op == "reactivate":
        result, error = _run(
            "reactivate_tenant",
            tenant,
            {},
            lambda: act.reactivate_tenant(gateway().backends, tenant),
        )
    else:
        raise bad_request("op: suspend or reactivate", parameter="op")
    return _done("Tenant " + op, f"/accounts/{account_id}", result, error, detail=detail)


# ------------------------------------------------------------------ other lists


@bp.post("/users/<user_id>/sessions/<session_id>/revoke")
@admin_post("revoke_session")
def revoke_session(user_id: str, session_id: str) -> tuple[str, int]:
    urls.path_id(user_id)
    urls.path_id(session_id)
    result, error = _run(
        "revoke_session",
        session_id,
        {"user_id": user_id},
        lambda: act.revoke_user_session(gateway().backends, session_id, _operator()),
    )
    return _done("Revoke session", f"/users/{user_id}", result, error)


@bp.post("/webhooks/<event_id>/republish")
@admin_post("republish")
def republish(event_id: str) -> tuple[str, int]:
    require_billing()
    urls.path_id(event_id)
    result, error = _run(
        "republish", event_id, {}, lambda: act.republish(gateway().backends, event_id)
    )
    return _done("Republish event", f"/webhooks/{event_id}", result, error)


@bp.post("/dead-letters/<int:dead_letter_id>/retry")
@admin_post("retry_dead_letter")
def retry_dead_letter(dead_letter_id: int) -> tuple[str, int]:
    require_billing()
    result, error = _run(
        "retry_dead_letter",
        str(dead_letter_id),
        {},
        lambda: act.retry_dead_letter(gateway().backends, dead_letter_id),
    )
    return _done("Retry dead letter", "/dead-letters", result, error)


@bp.post("/dead-letters/purge")
@admin_post("purge_dead_letters")
def purge_dead_letters() -> tuple[str, int]:
    require_billing()
    ids: list[int] = []
    for raw in request.form.getlist("id"):
        if not raw.isdigit() or len(raw) > 18:
            raise bad_request("id: malformed", parameter="id")
        ids.append(int(raw))
    all_resolved = _form("all_resolved") == "1"
    result, error = _run(
        "purge_dead_letters",
        "dead_letters",
        {"ids": ids, "all_resolved": all_resolved},
        lambda: act.purge_dead_letters(gateway().backends, ids, all_resolved),
    )
    return _done("Purge dead letters", "/dead-letters", result, error)


@bp.post("/drift/run")
@admin_post("drift_pass")
def drift_run() -> tuple[str, int]:
    require_billing()
    account_id = _form("account_id")
    result, error = _run(
        "drift_pass",
        account_id or "all",
        {},
        lambda: act.run_drift_pass(gateway().backends, account_id, _operator()),
    )
    return _done("Drift pass", "/drift", result, error)
