"""Classify one normalised Stripe event into the ledger's vocabulary (DESIGN.md section 4).

``classify`` is total and deterministic: it reads only the event's own payload
(``data.object`` = state after, ``data.previous_attributes`` = what changed) and never
raises. It returns ``None`` for Stripe events that do not concern billing (no row), and
exactly one ``Classification`` for every billing event.

Which Stripe events are billing (one ``billing_events`` row each)
-----------------------------------------------------------------
Prefixes ``customer.subscription.``, ``subscription_schedule.``, ``invoice.``,
``invoiceitem.``, ``invoice_payment.``, ``charge.``, ``refund.``, ``credit_note.``,
``customer.`` (created/updated/deleted, ``tax_id``, ``discount``, ``source``, ``card``,
``bank_account``), ``payment_method.``, ``payment_intent.``, ``checkout.session.``.
Everything else (``product.*``, ``plan.*``, ``price.*``, ``coupon.*``, ``promotion_code.*``,
``tax_rate.*``, ``account.*``, ``payout.*``, ``balance.*``, ``setup_intent.*``, ...) is
catalogue or platform plumbing: ``None``.

Rules (first match wins; anything billing that matches no rule is ``NoOp``)
-------------------------------------------------------------------------
* ``customer.subscription.created`` -> SubscriptionCreated.
* ``customer.subscription.deleted`` -> SubscriptionImmediatelyCancelled when
  ``cancellation_details.reason`` is ``payment_failed``/``payment_disputed``; else
  SubscriptionExpired when it was set to cancel at period end, or it ended
  (``ended_at`` ?? ``canceled_at`` ?? event time) at/after ``current_period_end`` or at/after
  a scheduled ``cancel_at``; else SubscriptionImmediatelyCancelled. ``previous_amount`` is the
  committed MRR just before the end (its status then: ``previous_attributes.status``, else
  trialing during a trial, ``incomplete`` for ``incomplete_expired``, else active), so a
  subscription that never committed MRR (trial, incomplete, paused) ends with delta 0.
* ``customer.subscription.paused`` -> SubscriptionSuspended; ``.resumed`` ->
  SubscriptionReactivated (flag ``resumed``); ``.trial_will_end`` -> NoOp.
* ``customer.subscription.updated`` / ``pending_update_applied`` / ``pending_update_expired``:
  the change is decomposed into components, each from ``previous_attributes``:
  price/item/quantity/discount change -> Upgraded (base MRR up) or Downgraded (down; same MRR:
  no component); ``cancel_at_period_end`` false->true or ``cancel_at`` set -> Cancelled,
  the reverse -> Reactivated; status -> ``past_due``/``unpaid`` -> PastDue; status ->
  ``paused`` or ``pause_collection`` set -> Suspended; leaving ``paused``/clearing
  ``pause_collection`` -> Reactivated (flag ``resumed``); a scheduled change (pending_update
  or expanded schedule) appearing with lower MRR -> DowngradeScheduled, a lower one going away
  without a price change -> DowngradeCancelled; ``default_payment_method``/``default_source``
  -> PaymentMethodUpdated. Period, ``latest_invoice``, trial, metadata, schedule-id changes
  are no component (the renewal burst's subscription.updated is NoOp). No component -> NoOp;
  one distinct type -> that type; several distinct types -> Unclassified (flags list them).
* ``subscription_schedule.created``: the next phase after the one in force is cheaper (phases
  priced by ``phase_mrr``, with the phase's discounts; or, with prices not in the payload,
  the same prices at lower quantities) -> DowngradeScheduled; a direction that is unknown
  (prices not in the payload and the price set changes: a ramp or an intro price is as
  likely) -> NoOp flagged ``schedule_direction_unknown``; cheaper-or-equal -> NoOp.
  ``.updated``: the same, but only when ``phases`` changed and the previous phases had no
  queued downgrade; a known queued downgrade going away (the next phase now up, equal or
  gone) -> DowngradeCancelled. ``.released``/``.canceled``/``.aborted`` with a known
  downgrade still ahead at release time -> DowngradeCancelled. Others NoOp.
* ``invoice.upcoming`` (and any invoice without an id) is a preview: NoOp flagged
  ``invoice_preview``, and no read-model row.
* ``invoice.paid``: ``attempt_count > 1``, ``marked_uncollectible_at`` set, or previous
  status ``uncollectible`` -> PaymentRecovered; else ``billing_reason = subscription_cycle``
  -> SubscriptionRenewed; else NoOp. ``invoice.payment_failed`` -> PaymentFailed.
  Other ``invoice.*`` (incl. ``invoice.payment_succeeded``, which Stripe sends together with
  ``invoice.paid`` for the same payment) -> NoOp, so one payment yields one row.
* ``charge.refunded`` -> PaymentRefunded; the amount is ``amount_refunded`` minus
  ``previous_attributes.amount_refunded`` when present, else the newest refund in the
  charge's refund list, else unknown (``NULL``, flag ``refund_amount_unknown``: the running
  total is not this event's refund). ``refund.created`` -> NoOp (the same
  refund also arrives as ``charge.refunded``) unless it has no charge/payment intent.
  ``credit_note.created`` -> PaymentRefunded for the post-payment part not paid back by a
  refund (credit to balance / out of band); else NoOp. Other charge/refund/credit-note
  events (disputes, ``charge.failed``, which accompanies ``invoice.payment_failed``) -> NoOp.
* ``customer.updated``: billing fields (address, email, name, phone, shipping, tax_exempt,
  tax_ids, tax_info) changed -> BillingInfoAdded when all their previous values were empty,
  else BillingInfoUpdated; only ``invoice_settings.default_payment_method``/``default_source``
  changed -> PaymentMethodUpdated (with billing fields too: BillingInfo*, flag
  ``payment_method_changed``). ``customer.tax_id.created`` -> BillingInfoAdded;
  ``.updated``/``.deleted`` -> BillingInfoUpdated. ``customer.source|card|bank_account
  .created/.updated`` -> PaymentMethodUpdated.
* ``payment_method.attached``/``.updated``/``.automatically_updated``/
  ``.card_automatically_updated`` -> PaymentMethodUpdated; ``.detached`` -> NoOp.

Amount fields: for subscription-state rows ``previous_amount``/``new_amount`` are the
committed MRR before/after and ``amount_delta`` their difference; for
DowngradeScheduled/DowngradeCancelled they are the current and scheduled MRR (``amount_delta``
0: committed MRR does not change yet); for payments ``new_amount`` is the amount paid / due.
``committed_mrr_after`` is ``None`` when the payload carries no subscription state.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, NamedTuple

from services.ledger.domain.mrr import (
    committed_before_end,
    compute_mrr,
    current_and_next_phase,
    is_cancelling,
    phase_mrr,
    scheduled_items,
)
from services.ledger.domain.normalised import (
    NormalisedEvent,
    ScheduleSnapshot,
    SubscriptionItem,
    SubscriptionSnapshot,
)
from services.ledger.domain.resolvers import UnsupportedApiVersion, resolve
from services.ledger.domain.rules import ENDED_STATUSES, phase_plan_name, plan_name

__all__ = [
    "BILLING_PREFIXES",
    "PREVIEW_INVOICE_EVENTS",
    "BillingEventType",
    "Classification",
    "classify",
    "classify_payload",
    "is_billing_event",
]


class BillingEventType(enum.StrEnum):
    SubscriptionCreated = "SubscriptionCreated"
    SubscriptionRenewed = "SubscriptionRenewed"
    SubscriptionUpgraded = "SubscriptionUpgraded"
    SubscriptionDowngradeScheduled = "SubscriptionDowngradeScheduled"
    SubscriptionDowngradeCancelled = "SubscriptionDowngradeCancelled"
    SubscriptionDowngraded = "SubscriptionDowngraded"
    SubscriptionCancelled = "SubscriptionCancelled"
    SubscriptionReactivated = "SubscriptionReactivated"
    SubscriptionExpired = "SubscriptionExpired"
    SubscriptionImmediatelyCancelled = "SubscriptionImmediatelyCancelled"
    SubscriptionSuspended = "SubscriptionSuspended"
    SubscriptionPastDue = "SubscriptionPastDue"
    PaymentFailed = "PaymentFailed"
    PaymentRecovered = "PaymentRecovered"
    PaymentRefunded = "PaymentRefunded"
    BillingInfoAdded = "BillingInfoAdded"
    BillingInfoUpdated = "BillingInfoUpdated"
    PaymentMethodUpdated = "PaymentMethodUpdated"
    NoOp = "NoOp"
    Unclassified = "Unclassified"


T = BillingEventType

BILLING_PREFIXES: tuple[str, ...] = (
    "customer.subscription.",
    "subscription_schedule.",
    "invoice.",
    "invoiceitem.",
    "invoice_payment.",
    "charge.",
    "refund.",
    "credit_note.",
    "customer.",
    "payment_method.",
    "payment_intent.",
    "checkout.session.",
)


#: Invoice events that describe a preview, not an invoice: no payment, no invoice id.
PREVIEW_INVOICE_EVENTS = frozenset({"invoice.upcoming"})


def is_billing_event(stripe_type: str) -> bool:
    """Whether a Stripe event type concerns billing (gets exactly one ledger row)."""
    return isinstance(stripe_type, str) and stripe_type.startswith(BILLING_PREFIXES)


class Classification(NamedTuple):
    """One ``billing_events`` row's worth of meaning, derived from one Stripe event.

    A ``NamedTuple`` for the reason given in ``normalised``: built once per event, its
    construction is cheap only as a tuple."""

    event_type: BillingEventType
    stripe_event_id: str | None
    stripe_event_type: str
    occurred_at: int
    subscription_id: str | None = None
    customer_id: str | None = None
    tenant_id: str | None = None
    from_plan: str | None = None
    to_plan: str | None = None
    previous_amount: int | None = None
    new_amount: int | None = None
    amount_delta: int | None = None
    committed_mrr_after: int | None = None
    forward_mrr_after: int | None = None
    currency: str | None = None
    reason: str | None = None
    refund_amount: int | None = None
    flags: tuple[str, ...] = ()


# --------------------------------------------------------------------------- helpers
def _row(ev: NormalisedEvent, event_type: BillingEventType, **fields: Any) -> Classification:
    flags = (*fields.pop("flags", ()), *ev.resolution_flags)
    fields.setdefault("customer_id", ev.customer_id)
    fields.setdefault("tenant_id", ev.tenant_id)
    return Classification(
        event_type=event_type,
        stripe_event_id=ev.event_id,
        stripe_event_type=ev.event_type,
        occurred_at=ev.created,
        flags=tuple(sorted(set(flags))),
        **fields,
    )


def _item_signature(i: SubscriptionItem) -> tuple[Any, ...]:
    item_discounts = sorted(
        (d.id or "", str(d.percent_off), d.amount_off or 0) for d in i.discounts
    )
    return (
        i.price_id or "",
        i.quantity if i.quantity is not None else -1,
        i.unit_amount if i.unit_amount is not None else -1,
        str(i.unit_amount_decimal),
        i.interval or "",
        i.interval_count,
        i.usage_type or "",
        tuple(item_discounts),
    )


def _pricing_signature(sub: SubscriptionSnapshot) -> tuple[Any, ...]:
    items = sorted(_item_signature(i) for i in sub.items)
    discounts = sorted(
        (d.id or "", d.coupon_id or "", str(d.percent_off), d.amount_off or 0, d.end or 0)
        for d in sub.discounts
    )
    return (tuple(items), tuple(discounts), sub.discount_refs_unresolved)


def _is_empty(value: object) -> bool:
    if value is None or value == "" or value == [] or value == {}:
        return True
    if isinstance(value, Mapping):
        return all(_is_empty(v) for v in value.values())
    return False


def _sub_base_fields(ev: NormalisedEvent, sub: SubscriptionSnapshot) -> dict[str, Any]:
    return {
        "subscription_id": sub.id,
        "customer_id": sub.customer_id or ev.customer_id,
    }


def _scheduled_mrr(sub: SubscriptionSnapshot, as_of: int) -> int | None:
    if scheduled_items(sub, as_of) is None:
        return None
    return compute_mrr(sub, as_of=as_of).forward if not is_cancelling(sub) else None


def _discount_key(d: Any) -> str:
    return str(d.id or d.coupon_id or repr(d))


def _before_as_of(prev: SubscriptionSnapshot, sub: SubscriptionSnapshot, created: int) -> int:
    """When to price the state before the change (rule: ended discounts are an MRR step).

    A discount the change removed was in force until it ended: the previous state is priced
    just before the earliest ``end`` among the removed discounts that had ended by now."""
    kept = {_discount_key(d) for d in sub.discounts}
    for item in sub.items:
        kept.update(_discount_key(d) for d in item.discounts)
    removed = [d for d in prev.discounts if _discount_key(d) not in kept]
    for item in prev.items:
        removed.extend(d for d in item.discounts if _discount_key(d) not in kept)
    ends = [d.end for d in removed if d.end is not None and d.end <= created]
    return min(ends) - 1 if ends else created


# --------------------------------------------------------------------------- subscriptions
def _subscription_created(ev: NormalisedEvent, sub: SubscriptionSnapshot) -> Classification:
    mrr = compute_mrr(sub, as_of=ev.created)
    return _row(
        ev,
        T.SubscriptionCreated,
        **_sub_base_fields(ev, sub),
        to_plan=plan_name(sub.items),
        previous_amount=0,
        new_amount=mrr.committed,
        amount_delta=mrr.committed,
        committed_mrr_after=mrr.committed,
        forward_mrr_after=mrr.forward,
        currency=mrr.currency,
        flags=(*mrr.flags, f"status:{sub.status}"),
    )


def _subscription_deleted(ev: NormalisedEvent, sub: SubscriptionSnapshot) -> Classification:
    mrr = compute_mrr(sub, as_of=ev.created)
    ended = sub.ended_at or sub.canceled_at or ev.created
    reason = sub.cancellation_reason or sub.cancellation_feedback
    if sub.cancellation_reason in ("payment_failed", "payment_disputed"):
        event_type = T.SubscriptionImmediatelyCancelled
    elif (
        sub.cancel_at_period_end
        or (sub.current_period_end is not None and ended >= sub.current_period_end)
        or (sub.cancel_at is not None and ended >= sub.cancel_at)
    ):
        event_type = T.SubscriptionExpired
    else:
        event_type = T.SubscriptionImmediatelyCancelled
    in_trial = sub.trial_end is not None and sub.trial_end >= ended
    stated = ev.previous_attributes.get("status")
    if isinstance(stated, str):
        status_before: str | None = stated
    elif in_trial:
        status_before = "trialing"
    elif sub.status == "incomplete_expired":
        status_before = "incomplete"  # it expired before the first payment was made
    elif sub.status in ENDED_STATUSES or sub.status is None:
        status_before = "active"
    else:
        status_before = sub.status
    previous = committed_before_end(sub, status=status_before, as_of=ev.created)
    return _row(
        ev,
        event_type,
        **_sub_base_fields(ev, sub),
        from_plan=plan_name(sub.items),
        previous_amount=previous,
        new_amount=0,
        amount_delta=-previous,
        committed_mrr_after=0,
        forward_mrr_after=0,
        currency=mrr.currency,
        reason=reason,
        flags=mrr.flags,
    )


def _subscription_updated(ev: NormalisedEvent, sub: SubscriptionSnapshot) -> Classification:
    prev = ev.previous_subscription or sub
    pa = ev.previous_attributes
    now = compute_mrr(sub, as_of=ev.created)
    before = compute_mrr(prev, as_of=_before_as_of(prev, sub, ev.created))
    components: dict[BillingEventType, str] = {}
    flags: list[str] = list(now.flags)
    reason: str | None = None
    from_plan = plan_name(prev.items)
    to_plan = plan_name(sub.items)
    previous_amount: int | None = before.committed
    new_amount: int | None = now.committed

    pricing_changed = bool(
        {"items", "plan", "quantity", "discount", "discounts"} & pa.keys()
    ) and _pricing_signature(prev) != _pricing_signature(sub)
    if pricing_changed:
        if now.base > before.base:
            components[T.SubscriptionUpgraded] = "price_change"
        elif now.base < before.base:
            components[T.SubscriptionDowngraded] = "price_change"
        else:
            flags.append("plan_changed_same_mrr")

    if "cancel_at_period_end" in pa and prev.cancel_at_period_end != sub.cancel_at_period_end:
        if sub.cancel_at_period_end:
            components[T.SubscriptionCancelled] = "cancel_at_period_end"
        else:
            components[T.SubscriptionReactivated] = "cancel_at_period_end"
    if "cancel_at" in pa and (prev.cancel_at is None) != (sub.cancel_at is None):
        if sub.cancel_at is not None:
            components[T.SubscriptionCancelled] = "cancel_at"
        else:
            components[T.SubscriptionReactivated] = "cancel_at"
    if T.SubscriptionCancelled in components:
        reason = sub.cancellation_reason or sub.cancellation_feedback

    if "status" in pa and prev.status != sub.status:
        flags.append(f"status:{prev.status}->{sub.status}")
        if sub.status in ("past_due", "unpaid"):
            components[T.SubscriptionPastDue] = "status"
            reason = reason or sub.status
        elif sub.status == "paused":
            components[T.SubscriptionSuspended] = "status"
            reason = reason or "paused"
        elif prev.status == "paused" and sub.status in ("active", "trialing"):
            components[T.SubscriptionReactivated] = "resumed"
            flags.append("resumed")

    if "pause_collection" in pa:
        if prev.pause_collection is None and sub.pause_collection is not None:
            components[T.SubscriptionSuspended] = "pause_collection"
            reason = reason or sub.pause_collection.behavior or "pause_collection"
        elif prev.pause_collection is not None and sub.pause_collection is None:
            components[T.SubscriptionReactivated] = "resumed"
            flags.append("resumed")

    if {"pending_update", "schedule"} & pa.keys():
        flags.append("scheduled_change_touched")
        now_sched = _scheduled_mrr(sub, ev.created)
        before_sched = _scheduled_mrr(prev, ev.created)
        now_down = now_sched is not None and now_sched < now.base
        before_down = before_sched is not None and before_sched < before.base
        if now_down and not before_down:
            components[T.SubscriptionDowngradeScheduled] = "scheduled_change"
            previous_amount, new_amount = now.base, now_sched
            upcoming = scheduled_items(sub, ev.created) or ()
            from_plan, to_plan = plan_name(sub.items), plan_name(upcoming)
        elif before_down and not now_down and not pricing_changed:
            components[T.SubscriptionDowngradeCancelled] = "scheduled_change"
            previous_amount, new_amount = before_sched, before.base

    if {"default_payment_method", "default_source"} & pa.keys():
        components[T.PaymentMethodUpdated] = "default_payment_method"

    if not components:
        event_type = T.NoOp
    elif len(components) == 1:
        event_type = next(iter(components))
    else:
        event_type = T.Unclassified
        flags.extend(f"component:{c.value}" for c in components)
    delta = now.committed - before.committed
    return _row(
        ev,
        event_type,
        **_sub_base_fields(ev, sub),
        from_plan=from_plan,
        to_plan=to_plan,
        previous_amount=previous_amount,
        new_amount=new_amount,
        amount_delta=delta,
        committed_mrr_after=now.committed,
        forward_mrr_after=now.forward,
        currency=now.currency,
        reason=reason,
        flags=flags,
    )


def _classify_subscription(ev: NormalisedEvent) -> Classification:
    sub = ev.subscription
    if sub is None:
        return _row(ev, T.NoOp, flags=("object_type_mismatch",))
    kind = ev.event_type.removeprefix("customer.subscription.")
    if kind == "created":
        return _subscription_created(ev, sub)
    if kind == "deleted":
        return _subscription_deleted(ev, sub)
    mrr = compute_mrr(sub, as_of=ev.created)
    common = {
        **_sub_base_fields(ev, sub),
        "committed_mrr_after": mrr.committed,
        "forward_mrr_after": mrr.forward,
        "currency": mrr.currency,
        "from_plan": plan_name(sub.items),
        "to_plan": plan_name(sub.items),
    }
    if kind == "paused":
        reason = sub.pause_collection.behavior if sub.pause_collection else "paused"
        return _row(ev, T.SubscriptionSuspended, **common, reason=reason, flags=mrr.flags)
    if kind == "resumed":
        return _row(ev, T.SubscriptionReactivated, **common, flags=(*mrr.flags, "resumed"))
    if kind in ("updated", "pending_update_applied", "pending_update_expired"):
        return _subscription_updated(ev, sub)
    return _row(ev, T.NoOp, **common, flags=mrr.flags)


# --------------------------------------------------------------------------- schedules
def _direction(schedule: ScheduleSnapshot, at: int | None) -> str | None:
    """``down``/``up``/``same``/``unknown`` for the next phase vs the one in force at ``at``;
    ``None`` when no phase is in force or none follows."""
    current, following = current_and_next_phase(schedule, at)
    if current is None or following is None:
        return None
    cur_mrr = phase_mrr(current, as_of=at)
    next_mrr = phase_mrr(following, as_of=at)
    if cur_mrr is not None and next_mrr is not None:
        return "down" if next_mrr < cur_mrr else "up" if next_mrr > cur_mrr else "same"
    cur_q: dict[str, int] = {}
    next_q: dict[str, int] = {}
    for phase, bucket in ((current, cur_q), (following, next_q)):
        for item in phase.items:
            key = item.price_id or "?"
            bucket[key] = bucket.get(key, 0) + (item.quantity if item.quantity is not None else 1)
    if cur_q.keys() != next_q.keys():
        return "unknown"
    lower = any(next_q[k] < cur_q[k] for k in cur_q)
    higher = any(next_q[k] > cur_q[k] for k in cur_q)
    if lower and higher:
        return "unknown"
    return "down" if lower else "up" if higher else "same"


def _phase_names(schedule: ScheduleSnapshot, at: int | None) -> tuple[str | None, str | None]:
    current, following = current_and_next_phase(schedule, at)
    return phase_plan_name(current), phase_plan_name(following)


def _classify_schedule(ev: NormalisedEvent) -> Classification:
    schedule = ev.schedule
    if schedule is None:
        return _row(ev, T.NoOp, flags=("object_type_mismatch",))
    kind = ev.event_type.removeprefix("subscription_schedule.")
    at: int | None = ev.created
    if kind in ("released", "canceled", "aborted"):
        at = schedule.released_at or schedule.canceled_at or ev.created
    direction = _direction(schedule, at)
    current, following = current_and_next_phase(schedule, at)
    priced: set[str] = set()
    cur_mrr = phase_mrr(current, as_of=at, flags=priced) if current is not None else None
    next_mrr = phase_mrr(following, as_of=at, flags=priced) if following is not None else None
    from_plan, to_plan = _phase_names(schedule, at)
    common: dict[str, Any] = {
        "subscription_id": schedule.subscription_id or schedule.released_subscription,
        "customer_id": schedule.customer_id or ev.customer_id,
        "from_plan": from_plan,
        "to_plan": to_plan,
        "previous_amount": cur_mrr,
        "new_amount": next_mrr,
        "currency": (current.currency if current is not None else None),
    }
    flags: list[str] = [f"schedule_direction:{direction}", *sorted(priced)]
    if direction == "unknown":
        # Phases known only by price ids, and the price set changes: an intro price or a
        # ramp is as likely as a downgrade. A neutral, flagged row; never a downgrade.
        flags.append("schedule_direction_unknown")
    queued_down = direction == "down"
    if kind == "created":
        if queued_down:
            return _row(
                ev,
                T.SubscriptionDowngradeScheduled,
                **common,
                amount_delta=0,
                forward_mrr_after=next_mrr,
                flags=flags,
            )
        return _row(ev, T.NoOp, **common, flags=flags)
    if kind == "updated":
        if "phases" in ev.previous_attributes and ev.previous_schedule is not None:
            before = _direction(ev.previous_schedule, at)
            before_down = before == "down"
            flags.append(f"previous_direction:{before}")
            if queued_down and not before_down:
                return _row(
                    ev,
                    T.SubscriptionDowngradeScheduled,
                    **common,
                    amount_delta=0,
                    forward_mrr_after=next_mrr,
                    flags=flags,
                )
            if before_down and direction in ("up", "same", None):
                return _row(ev, T.SubscriptionDowngradeCancelled, **common, flags=flags)
        return _row(ev, T.NoOp, **common, flags=flags)
    if kind in ("released", "canceled", "aborted") and queued_down:
        common["forward_mrr_after"] = cur_mrr
        return _row(ev, T.SubscriptionDowngradeCancelled, **common, amount_delta=0, flags=flags)
    return _row(ev, T.NoOp, **common, flags=flags)


# --------------------------------------------------------------------------- invoices
def _classify_invoice(ev: NormalisedEvent) -> Classification:
    inv = ev.invoice
    if inv is None:
        return _row(ev, T.NoOp, flags=("object_type_mismatch",))
    common: dict[str, Any] = {
        "subscription_id": inv.subscription_id,
        "customer_id": inv.customer_id or ev.customer_id,
        "currency": inv.currency,
        "to_plan": "+".join(inv.line_plans) if inv.line_plans else None,
    }
    flags = [f"billing_reason:{inv.billing_reason}"]
    if ev.event_type in PREVIEW_INVOICE_EVENTS or inv.id is None:
        # A preview of the next invoice (no invoice id): nothing was billed or paid.
        return _row(ev, T.NoOp, **common, flags=(*flags, "invoice_preview"))
    if ev.event_type == "invoice.payment_failed":
        amount = inv.amount_remaining if inv.amount_remaining is not None else inv.amount_due
        return _row(ev, T.PaymentFailed, **common, new_amount=amount, flags=flags)
    if ev.event_type == "invoice.paid":
        prev_status = ev.previous_attributes.get("status")
        recovered = (
            (inv.attempt_count is not None and inv.attempt_count > 1)
            or inv.marked_uncollectible_at is not None
            or prev_status == "uncollectible"
        )
        if recovered:
            return _row(ev, T.PaymentRecovered, **common, new_amount=inv.amount_paid, flags=flags)
        if inv.billing_reason == "subscription_cycle":
            return _row(
                ev, T.SubscriptionRenewed, **common, new_amount=inv.amount_paid, flags=flags
            )
    return _row(ev, T.NoOp, **common, flags=flags)


# --------------------------------------------------------------------------- money back
def _classify_charge(ev: NormalisedEvent) -> Classification:
    charge = ev.charge
    if charge is None:
        return _row(ev, T.NoOp, flags=("object_type_mismatch",))
    common: dict[str, Any] = {"customer_id": charge.customer_id, "currency": charge.currency}
    if ev.event_type != "charge.refunded":
        return _row(ev, T.NoOp, **common)
    prev_refunded = ev.previous_attributes.get("amount_refunded")
    total = charge.amount_refunded
    amount: int | None
    if isinstance(prev_refunded, int) and not isinstance(prev_refunded, bool) and total is not None:
        amount = total - prev_refunded
    elif charge.refunds:
        newest = max(charge.refunds, key=lambda r: (r.created or 0, r.id or ""))
        amount = newest.amount
    else:
        # The running total is not this event's refund (API 2022-11-15+ sends no refunds
        # list): the amount is unknown here. Net revenue takes it from refund.* events and
        # the charge's amount_refunded (the larger of the two, never their sum).
        amount = None
    full = total is not None and charge.amount is not None and total >= charge.amount
    flags = ["full_refund" if full else "partial_refund"]
    if amount is None:
        flags.append("refund_amount_unknown")
    return _row(
        ev,
        T.PaymentRefunded,
        **common,
        new_amount=total,
        refund_amount=amount,
        flags=flags,
    )


def _classify_refund(ev: NormalisedEvent) -> Classification:
    refund = ev.refund
    if refund is None:
        return _row(ev, T.NoOp, flags=("object_type_mismatch",))
    common: dict[str, Any] = {"currency": refund.currency}
    if (
        ev.event_type == "refund.created"
        and refund.charge_id is None
        and refund.payment_intent_id is None
    ):
        return _row(ev, T.PaymentRefunded, **common, refund_amount=refund.amount)
    return _row(ev, T.NoOp, **common, flags=("recorded_by_charge_refunded",))


def _classify_credit_note(ev: NormalisedEvent) -> Classification:
    note = ev.credit_note
    if note is None:
        return _row(ev, T.NoOp, flags=("object_type_mismatch",))
    common: dict[str, Any] = {
        "customer_id": note.customer_id or ev.customer_id,
        "currency": note.currency,
        "reason": note.reason,
    }
    if ev.event_type == "credit_note.created":
        credited = note.post_payment_amount
        if credited is None and note.type == "post_payment":
            credited = note.total
        uncovered = (credited or 0) - (note.refunded_amount or 0)
        if uncovered > 0:
            return _row(
                ev, T.PaymentRefunded, **common, refund_amount=uncovered, flags=("credit_note",)
            )
    return _row(ev, T.NoOp, **common, flags=("credit_note",))


# --------------------------------------------------------------------------- customers
_BILLING_INFO_KEYS = frozenset(
    {"address", "email", "name", "phone", "shipping", "tax_exempt", "tax_ids", "tax_info"}
)


def _classify_customer(ev: NormalisedEvent) -> Classification:
    kind = ev.event_type.removeprefix("customer.")
    if kind.startswith("tax_id."):
        if kind == "tax_id.created":
            return _row(ev, T.BillingInfoAdded, flags=("tax_id",))
        return _row(ev, T.BillingInfoUpdated, flags=("tax_id",))
    if kind.split(".")[0] in ("source", "card", "bank_account"):
        if kind.endswith((".created", ".updated")):
            return _row(ev, T.PaymentMethodUpdated, flags=(kind,))
        return _row(ev, T.NoOp, flags=(kind,))
    if kind != "updated":
        return _row(ev, T.NoOp)
    pa = ev.previous_attributes
    # keys first: a set, typed as one (frozenset & keys is a set too, but typed frozenset)
    billing_changed = sorted(pa.keys() & _BILLING_INFO_KEYS)
    invoice_settings = pa.get("invoice_settings")
    pm_changed = "default_source" in pa or (
        isinstance(invoice_settings, Mapping) and "default_payment_method" in invoice_settings
    )
    flags = [f"changed:{k}" for k in billing_changed]
    if billing_changed:
        if pm_changed:
            flags.append("payment_method_changed")
        added = all(_is_empty(pa.get(k)) for k in billing_changed)
        return _row(ev, T.BillingInfoAdded if added else T.BillingInfoUpdated, flags=flags)
    if pm_changed:
        return _row(ev, T.PaymentMethodUpdated)
    return _row(ev, T.NoOp)


def _classify_payment_method(ev: NormalisedEvent) -> Classification:
    pm = ev.payment_method
    customer = pm.customer_id if pm is not None else ev.customer_id
    kind = ev.event_type.removeprefix("payment_method.")
    if kind in ("attached", "updated", "automatically_updated", "card_automatically_updated"):
        return _row(ev, T.PaymentMethodUpdated, customer_id=customer)
    return _row(ev, T.NoOp, customer_id=customer)


# --------------------------------------------------------------------------- entry points
def classify(event: NormalisedEvent) -> Classification | None:
    """The ledger row for ``event``, or ``None`` when the Stripe event is not about billing."""
    t = event.event_type
    if not is_billing_event(t):
        return None
    if t.startswith("customer.subscription."):
        return _classify_subscription(event)
    if t.startswith("subscription_schedule."):
        return _classify_schedule(event)
    if t.startswith("invoice."):
        return _classify_invoice(event)
    if t.startswith("charge.") and not t.startswith(("charge.dispute.", "charge.refund.")):
        return _classify_charge(event)
    if t.startswith("refund."):
        return _classify_refund(event)
    if t.startswith("credit_note."):
        return _classify_credit_note(event)
    if t.startswith("customer."):
        return _classify_customer(event)
    if t.startswith("payment_method."):
        return _classify_payment_method(event)
    return _row(event, T.NoOp)


def classify_payload(raw: object) -> Classification | UnsupportedApiVersion | None:
    """Resolve then classify a raw event (parsed JSON). Never raises."""
    resolved = resolve(raw)
    if isinstance(resolved, UnsupportedApiVersion):
        return resolved
    return classify(resolved)
