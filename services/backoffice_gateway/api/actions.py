"""Admin action endpoints (POST; admin role; audited; CSRF-checked when made with a session)."""

from __future__ import annotations

from typing import Any

from services.backoffice_gateway.api.registry import endpoint
from services.backoffice_gateway.api.spec import Param
from services.backoffice_gateway.context import gateway
from services.backoffice_gateway.views import actions
from services.backoffice_gateway.views.actions import ActionResult

ACCOUNT = Param("account_id", description="account id")
SUBSCRIPTION = Param("subscription_id", description="Stripe subscription id")
IDEMPOTENCY = Param("idempotency_key", description="send the same key to retry safely",
                    default="", max_length=128)
NOTE = Param("note", description="free text kept with the action", default="", max_length=500)


def _b() -> Any:
    return gateway().backends


def _account(args: dict[str, Any]) -> str:
    return f"account:{args['account_id']}"


def _subscription(args: dict[str, Any]) -> str:
    return f"subscription:{args['subscription_id']}"


def _done(result: ActionResult) -> ActionResult:
    gateway().banners.clear()  # the banners may have changed: next page shows it
    return result


@endpoint("/accounts/<account_id>/sync", "POST", summary="Sync the account with Stripe",
          tag="actions", admin=True, path_params=(ACCOUNT,), target=_account)
def sync_account(args: dict[str, Any]) -> ActionResult:
    return _done(actions.sync_account(_b(), args["account_id"], args["operator"]))


@endpoint("/accounts/<account_id>/recovery-cutoff", "POST",
          summary="Disaster recovery: seed a subscription from Stripe at a cutoff",
          tag="actions", admin=True, path_params=(ACCOUNT,), target=_account,
          body=(Param("subscription_id", required=True), Param("cutoff", "date-time",
                required=True), NOTE))
def recovery_cutoff(args: dict[str, Any]) -> ActionResult:
    return _done(actions.set_recovery_cutoff(
        _b(), args["subscription_id"], args["cutoff"], args["operator"], args["note"]))


@endpoint("/accounts/<account_id>/acknowledge-drift", "POST", summary="Acknowledge drift",
          tag="actions", admin=True, path_params=(ACCOUNT,), target=_account, body=(NOTE,))
def acknowledge_drift(args: dict[str, Any]) -> ActionResult:
    return _done(actions.acknowledge_drift(_b(), args["account_id"], args["operator"],
                                           args["note"]))


@endpoint("/drift/run", "POST", summary="Run a drift pass (one account or all)", tag="actions",
          admin=True, target=lambda a: "drift",
          body=(Param("account_id", default=""),))
def run_drift_pass(args: dict[str, Any]) -> ActionResult:
    return _done(actions.run_drift_pass(_b(), args["account_id"], args["operator"]))


@endpoint(
    "/accounts/<account_id>/refund", "POST", summary="Refund a payment (full or partial)",
    tag="actions", admin=True, path_params=(ACCOUNT,), target=_account,
    body=(
        Param("charge_id", default=""),
        Param("payment_intent_id", default=""),
        Param("amount_minor", "integer", "unset: everything refundable", minimum=1),
        Param("reason", enum=("", *actions.REFUND_REASONS), default=""),
        IDEMPOTENCY,
    ),
)
def refund(args: dict[str, Any]) -> ActionResult:
    return actions.refund(
        _b(), account_id=args["account_id"], charge_id=args["charge_id"],
        payment_intent_id=args["payment_intent_id"], amount_minor=args["amount_minor"],
        reason=args["reason"], operator=args["operator"],
        idempotency_key=args["idempotency_key"],
    )


@endpoint("/subscriptions/<subscription_id>/cancel", "POST", summary="Cancel a subscription",
          tag="actions", admin=True, path_params=(SUBSCRIPTION,), target=_subscription,
          body=(Param("at_period_end", "boolean", default=True),
                Param("reason", default="", max_length=500), IDEMPOTENCY))
def cancel_subscription(args: dict[str, Any]) -> ActionResult:
    return actions.cancel(_b(), args["subscription_id"], args["at_period_end"], args["reason"],
                          args["operator"], args["idempotency_key"])


@endpoint("/subscriptions/<subscription_id>/reactivate", "POST",
          summary="Undo a cancel at period end", tag="actions", admin=True,
          path_params=(SUBSCRIPTION,), target=_subscription, body=(IDEMPOTENCY,))
def reactivate_subscription(args: dict[str, Any]) -> ActionResult:
    return actions.reactivate(_b(), args["subscription_id"], args["operator"],
                              args["idempotency_key"])


@endpoint("/subscriptions/<subscription_id>/quantity", "POST", summary="Change the quantity",
          tag="actions", admin=True, path_params=(SUBSCRIPTION,), target=_subscription,
          body=(Param("quantity", "integer", required=True, minimum=1, maximum=1_000_000),
                Param("item_id", default=""), IDEMPOTENCY))
def change_quantity(args: dict[str, Any]) -> ActionResult:
    return actions.change_quantity(_b(), args["subscription_id"], args["quantity"],
                                   args["item_id"], args["operator"], args["idempotency_key"])


@endpoint("/accounts/<account_id>/suspend", "POST", summary="Suspend the tenant",
          tag="actions", admin=True, path_params=(ACCOUNT,), target=_account)
def suspend_tenant(args: dict[str, Any]) -> ActionResult:
    return _done(actions.suspend_tenant(_b(), args["account_id"]))


@endpoint("/accounts/<account_id>/reactivate", "POST", summary="Reactivate the tenant",
          tag="actions", admin=True, path_params=(ACCOUNT,), target=_account)
def reactivate_tenant(args: dict[str, Any]) -> ActionResult:
    return _done(actions.reactivate_tenant(_b(), args["account_id"]))


@endpoint("/users/<user_id>/sessions/<session_id>/revoke", "POST",
          summary="Revoke a user's session", tag="actions", admin=True, billing=False,
          path_params=(Param("user_id"), Param("session_id")),
          target=lambda a: f"session:{a['session_id']}")
def revoke_session(args: dict[str, Any]) -> ActionResult:
    return actions.revoke_user_session(_b(), args["session_id"], args["operator"])


@endpoint("/webhooks/<event_id>/republish", "POST", summary="Republish an archived event",
          tag="actions", admin=True, path_params=(Param("event_id"),),
          target=lambda a: f"event:{a['event_id']}")
def republish(args: dict[str, Any]) -> ActionResult:
    return actions.republish(_b(), args["event_id"])


@endpoint("/dead-letters/<int:dead_letter_id>/retry", "POST", summary="Retry a dead letter",
          tag="actions", admin=True,
          path_params=(Param("dead_letter_id", "integer", minimum=1),),
          target=lambda a: f"dead_letter:{a['dead_letter_id']}")
def retry_dead_letter(args: dict[str, Any]) -> ActionResult:
    return actions.retry_dead_letter(_b(), args["dead_letter_id"])


@endpoint("/dead-letters/purge", "POST", summary="Purge dead letters", tag="actions",
          admin=True, target=lambda a: "dead_letters",
          body=(Param("ids", "array", items_type="integer", minimum=1, maximum=2**62,
                      default=[]),
                Param("all_resolved", "boolean", default=False)))
def purge_dead_letters(args: dict[str, Any]) -> ActionResult:
    return actions.purge_dead_letters(_b(), args["ids"] or [], args["all_resolved"])
