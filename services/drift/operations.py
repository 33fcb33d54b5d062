"""Operators' Stripe actions: refunds, cancel, reactivate, quantity changes.

Every write carries an idempotency key (the caller's, or one generated and returned so a
retry can reuse it: Stripe answers a repeated key with the first answer, so a retried refund
never refunds twice) and the operator's name in Stripe metadata. Every call, success or
failure, is one row of ``drift.operations``. Nothing here writes the ledger: the results
reach it the normal way, through Stripe's webhooks.

Subscription changes are verified: after Stripe answers, the subscription is retrieved and
the call succeeds only if Stripe shows the change.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import stripe
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.grpc_errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ServiceError,
    Unavailable,
)
from services.drift import store
from services.drift.stripe_calls import (
    RequestCount,
    StripeCaller,
    StripeUnavailable,
    service_error,
)

log = logging.getLogger(__name__)
JSON = dict[str, Any]
T = TypeVar("T")

REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


class RefundRefused(FailedPrecondition):
    """More than the refundable amount, or nothing left to refund."""

    def __init__(self, message: str, refundable: int, currency: str) -> None:
        super().__init__(message)
        self.refundable = refundable
        self.currency = currency


@dataclass(frozen=True, slots=True)
class RefundResult:
    refund_id: str
    status: str
    amount: int
    currency: str
    refundable_after: int
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class SubscriptionResult:
    subscription_id: str
    status: str
    cancel_at_period_end: bool
    quantity: int
    current_period_end: int | None
    idempotency_key: str
    verified: bool


def _key(given: str, operation: str) -> str:
    return given or f"drift-{operation}-{uuid.uuid4().hex}"


def _operator(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidArgument("operator is required")
    if len(name) > 200:
        raise InvalidArgument("operator is too long")
    return name


def _item(sub: JSON, item_id: str = "") -> JSON:
    items = (sub.get("items") or {}).get("data") or []
    if item_id:
        for item in items:
            if item.get("id") == item_id:
                return dict(item)
        raise NotFound(f"no item {item_id} on subscription {sub.get('id')}")
    if len(items) != 1:
        raise InvalidArgument("the subscription has several items: give item_id")
    return dict(items[0])


def _result(sub: JSON, key: str, verified: bool) -> SubscriptionResult:
    items = (sub.get("items") or {}).get("data") or [{}]
    first = items[0]
    period_end = sub.get("current_period_end") or first.get("current_period_end")
    return SubscriptionResult(
        subscription_id=sub["id"],
        status=str(sub.get("status") or ""),
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        quantity=int(first.get("quantity") or sub.get("quantity") or 0),
        current_period_end=int(period_end) if period_end else None,
        idempotency_key=key,
        verified=verified,
    )


class StripeOperationsService:
    """The logic behind ``billing.drift.v1.StripeOperations`` (the servicer is thin)."""

    def __init__(self, engine: AsyncEngine, caller: StripeCaller | None) -> None:
        self.engine = engine
        self.caller = caller

    def _stripe(self) -> StripeCaller:
        if self.caller is None:
            raise FailedPrecondition("Stripe is not configured (STRIPE_API_KEY)")
        return self.caller

    async def _audited(
        self,
        operation: str,
        target: str,
        operator: str,
        parameters: JSON,
        key: str,
        work: Callable[[], Awaitable[T]],
        object_of: Callable[[T], str | None],
    ) -> T:
        """Run ``work`` and write the audit row whatever happens."""
        try:
            result = await work()
        except stripe.StripeError as exc:
            error = service_error(exc)
            await self._audit(operation, target, operator, parameters, key, None, str(error))
            raise error from None
        except StripeUnavailable as exc:
            await self._audit(operation, target, operator, parameters, key, None, str(exc))
            raise Unavailable("stripe unavailable, retry with the same idempotency key") from exc
        except ServiceError as exc:
            await self._audit(operation, target, operator, parameters, key, None, str(exc))
            raise
        await self._audit(operation, target, operator, parameters, key, object_of(result), None)
        return result

    @asynccontextmanager
    async def _validated(
        self, operation: str, target: str, operator: str, parameters: JSON, key: str
    ) -> AsyncIterator[None]:
        """Requests refused before reaching Stripe are audited too (every call is)."""
        try:
            yield
        except InvalidArgument as exc:
            await self._audit(
                operation,
                target.strip()[:255] or "(none)",
                operator.strip()[:200] or "(none)",
                parameters,
                key,
                None,
                str(exc),
            )
            raise

    async def _audit(
        self,
        operation: str,
        target: str,
        operator: str,
        parameters: JSON,
        key: str,
        stripe_object_id: str | None,
        error: str | None,
    ) -> None:
        await store.audit_operation(
            self.engine,
            operation=operation,
            target=target,
            operator=operator,
            parameters=parameters,
            outcome="failed" if error else "succeeded",
            error=error,
            idempotency_key=key,
            stripe_object_id=stripe_object_id,
        )
        log.info(
            "stripe operation",
            extra={
                "operation": operation,
                "target": target,
                "operator": operator,
                "outcome": "failed" if error else "succeeded",
            },
        )

    # ------------------------------------------------------------------ refunds
    async def refund(
        self,
        *,
        charge_id: str,
        payment_intent_id: str,
        amount: int | None,
        reason: str,
        operator: str,
        idempotency_key: str,
    ) -> RefundResult:
        key = _key(idempotency_key, "refund")
        params: JSON = {"amount_minor": amount, "reason": reason or None}
        async with self._validated("refund", charge_id or payment_intent_id, operator, params, key):
            operator = _operator(operator)
            if bool(charge_id) == bool(payment_intent_id):
                raise InvalidArgument("give exactly one of charge_id or payment_intent_id")
            if amount is not None and amount <= 0:
                raise InvalidArgument("amount_minor must be positive")
            if reason and reason not in REFUND_REASONS:
                raise InvalidArgument(f"reason must be one of {sorted(REFUND_REASONS)}")
            target = _safe_id(charge_id or payment_intent_id, "charge_id / payment_intent_id")
        caller = self._stripe()

        async def work() -> RefundResult:
            count = RequestCount()
            charge = await self._charge(
                caller, target if charge_id else "", target if payment_intent_id else "", count
            )
            body: JSON = {
                "charge": charge["id"],
                "metadata": {"operator": operator, "drift_idempotency_key": key},
                "idempotency_key": key,
            }
            if amount is not None:
                body["amount"] = amount
            if reason:
                body["reason"] = reason
            try:
                refund = await caller.request("post", "/v1/refunds", count, **body)
            except stripe.InvalidRequestError as exc:
                if exc.http_status != 400:
                    raise
                fresh = await caller.request("get", f"/v1/charges/{charge['id']}", count)
                left = int(fresh["amount"]) - int(fresh["amount_refunded"])
                currency = str(fresh["currency"]).upper()
                what = "already fully refunded" if left <= 0 else "more than refundable"
                raise RefundRefused(
                    f"refund refused ({what}): refundable amount is {left} {currency}",
                    left,
                    currency,
                ) from None
            after = await caller.request("get", f"/v1/charges/{charge['id']}", count)
            return RefundResult(
                refund_id=refund["id"],
                status=str(refund.get("status") or ""),
                amount=int(refund["amount"]),
                currency=str(refund["currency"]).upper(),
                refundable_after=int(after["amount"]) - int(after["amount_refunded"]),
                idempotency_key=key,
            )

        return await self._audited(
            "refund", target, operator, params, key, work, lambda r: r.refund_id
        )

    async def _charge(
        self, caller: StripeCaller, charge_id: str, payment_intent_id: str, count: RequestCount
    ) -> JSON:
        if charge_id:
            return await caller.request("get", f"/v1/charges/{charge_id}", count)
        page = await caller.request(
            "get", "/v1/charges", count, payment_intent=payment_intent_id, limit=10
        )
        charges = [c for c in page.get("data", []) if c.get("status") == "succeeded"]
        if not charges:
            raise NotFound(f"no succeeded charge for payment intent {payment_intent_id}")
        return dict(charges[0])

    # ------------------------------------------------------------------ subscriptions
    async def cancel(
        self,
        *,
        subscription_id: str,
        at_period_end: bool,
        operator: str,
        idempotency_key: str,
        reason: str,
    ) -> SubscriptionResult:
        key = _key(idempotency_key, "cancel")
        params: JSON = {"at_period_end": at_period_end, "reason": reason or None}
        async with self._validated("cancel_subscription", subscription_id, operator, params, key):
            operator = _operator(operator)
            sid = _subscription_id(subscription_id)
        caller = self._stripe()
        metadata = {"operator": operator, "drift_operation": "cancel"}

        async def work() -> SubscriptionResult:
            count = RequestCount()
            if at_period_end:
                await caller.request(
                    "post",
                    f"/v1/subscriptions/{sid}",
                    count,
                    cancel_at_period_end=True,
                    metadata=metadata,
                    idempotency_key=key,
                )
            else:
                # Metadata first (the cancel endpoint takes none), each write with its own key.
                await caller.request(
                    "post",
                    f"/v1/subscriptions/{sid}",
                    count,
                    metadata=metadata,
                    idempotency_key=f"{key}:metadata",
                )
                await caller.request(
                    "delete", f"/v1/subscriptions/{sid}", count, idempotency_key=key
                )
            sub = await caller.request("get", f"/v1/subscriptions/{sid}", count)
            shown = (
                bool(sub.get("cancel_at_period_end")) or sub.get("status") == "canceled"
                if at_period_end
                else sub.get("status") == "canceled"
            )
            if not shown:
                raise FailedPrecondition("Stripe answered, but the subscription shows no cancel")
            return _result(sub, key, True)

        return await self._audited(
            "cancel_subscription", sid, operator, params, key, work, lambda r: r.subscription_id
        )

    async def reactivate(
        self, *, subscription_id: str, operator: str, idempotency_key: str
    ) -> SubscriptionResult:
        key = _key(idempotency_key, "reactivate")
        async with self._validated("reactivate_subscription", subscription_id, operator, {}, key):
            operator = _operator(operator)
            sid = _subscription_id(subscription_id)
        caller = self._stripe()

        async def work() -> SubscriptionResult:
            count = RequestCount()
            sub = await caller.request("get", f"/v1/subscriptions/{sid}", count)
            if sub.get("status") == "canceled":
                raise FailedPrecondition("the subscription has ended: it cannot be reactivated")
            if not sub.get("cancel_at_period_end") and not idempotency_key:
                raise FailedPrecondition("the subscription is not cancelling at period end")
            await caller.request(
                "post",
                f"/v1/subscriptions/{sid}",
                count,
                cancel_at_period_end=False,
                metadata={"operator": operator, "drift_operation": "reactivate"},
                idempotency_key=key,
            )
            sub = await caller.request("get", f"/v1/subscriptions/{sid}", count)
            if sub.get("cancel_at_period_end"):
                raise FailedPrecondition("Stripe answered, but the subscription still cancels")
            return _result(sub, key, True)

        return await self._audited(
            "reactivate_subscription", sid, operator, {}, key, work, lambda r: r.subscription_id
        )

    async def update_quantity(
        self,
        *,
        subscription_id: str,
        quantity: int,
        item_id: str,
        operator: str,
        idempotency_key: str,
    ) -> SubscriptionResult:
        key = _key(idempotency_key, "quantity")
        params: JSON = {"quantity": quantity, "item_id": item_id or None}
        async with self._validated("update_quantity", subscription_id, operator, params, key):
            operator = _operator(operator)
            sid = _subscription_id(subscription_id)
            if quantity < 1:
                raise InvalidArgument("quantity must be at least 1")
        caller = self._stripe()

        async def work() -> SubscriptionResult:
            count = RequestCount()
            sub = await caller.request("get", f"/v1/subscriptions/{sid}", count)
            item = _item(sub, item_id)
            await caller.request(
                "post",
                f"/v1/subscriptions/{sid}",
                count,
                items=[{"id": item["id"], "quantity": quantity}],
                metadata={"operator": operator, "drift_operation": "quantity"},
                idempotency_key=key,
            )
            sub = await caller.request("get", f"/v1/subscriptions/{sid}", count)
            if int(_item(sub, item["id"]).get("quantity") or 0) != quantity:
                raise FailedPrecondition("Stripe answered, but the quantity did not change")
            return _result(sub, key, True)

        return await self._audited(
            "update_quantity", sid, operator, params, key, work, lambda r: r.subscription_id
        )


def _safe_id(value: str, name: str) -> str:
    """A Stripe object id that is safe to put in a URL path."""
    value = value.strip()
    if not value or len(value) > 255 or not value.replace("_", "").isalnum():
        raise InvalidArgument(f"{name} must be a Stripe object id")
    return value


def _subscription_id(value: str) -> str:
    value = value.strip()
    if not value.startswith("sub_") or len(value) > 255 or "/" in value:
        raise InvalidArgument("subscription_id must be a Stripe subscription id (sub_...)")
    return value
