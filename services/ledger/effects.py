"""What one archived Stripe event does to the ledger, computed from its bytes alone.

``project_event`` is pure (no I/O, no clock), so it can run anywhere (a process pool for
replays) and gives the same rows for the same bytes, which is the first half of the ledger
being a function of the archive. The second half, applying rows so that arrival order does
not matter, is :mod:`services.ledger.projection`.

Rows are tuples in the column order of :mod:`services.ledger.tables`; timestamps are aware
UTC datetimes; money is integer minor units with an upper-case currency.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from services.ledger.domain import UnsupportedApiVersion, classify, compute_mrr, resolve
from services.ledger.domain.classifier import PREVIEW_INVOICE_EVENTS
from services.ledger.domain.mrr import current_and_next_phase, phase_mrr, scheduled_items
from services.ledger.domain.normalised import (
    InvoiceSnapshot,
    NormalisedEvent,
    RefundSnapshot,
    SchedulePhase,
    SubscriptionItem,
    SubscriptionSnapshot,
)

# orjson parses Stripe-sized documents about 3x faster than the standard library.
_loads: Any = orjson.loads


class BadEvent(ValueError):
    """The message is not a Stripe event the ledger can read (not JSON, no id, ...)."""


@dataclass(slots=True)
class Effects:
    """Rows one event contributes; ``rows`` maps a read-model table name to its rows."""

    event_id: str
    occurred_at: datetime
    billing: tuple[Any, ...] | None = None
    unsupported: tuple[Any, ...] | None = None
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.rows.setdefault(table, []).append(row)


def ts(value: int | None) -> datetime | None:
    """Stripe epoch seconds as an aware UTC datetime."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _upper(value: object) -> str | None:
    text = _str(value)
    return text.upper() if text is not None and len(text) == 3 and text.isalpha() else None


def parse_event(payload: bytes) -> dict[str, Any]:
    """The event document; ``BadEvent`` unless it is a JSON object with a string id."""
    try:
        document = _loads(payload)
    except ValueError as exc:
        raise BadEvent(f"payload is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadEvent("payload is not a JSON object")
    if not isinstance(document.get("id"), str) or not document["id"]:
        raise BadEvent("event has no id")
    return document


def project_event(payload: bytes) -> Effects:
    """Everything the ledger writes for this event (``BadEvent`` if it cannot be read)."""
    return project_document(parse_event(payload))


def project_document(doc: dict[str, Any]) -> Effects:
    event_id: str = doc["id"]
    resolved = resolve(doc)
    if isinstance(resolved, UnsupportedApiVersion):
        created = _int(doc.get("created"))
        effects = Effects(event_id, ts(created) or datetime.fromtimestamp(0, UTC))
        effects.unsupported = (
            event_id,
            resolved.event_type,
            resolved.api_version,
            resolved.reason,
            ts(created),
        )
        return effects
    occurred = ts(resolved.created) or datetime.fromtimestamp(0, UTC)
    effects = Effects(event_id, occurred)
    classification = classify(resolved)
    if classification is not None:
        c = classification
        effects.billing = (
            event_id,
            c.stripe_event_type,
            c.event_type.value,
            c.tenant_id,
            c.customer_id,
            c.subscription_id,
            c.from_plan,
            c.to_plan,
            c.previous_amount,
            c.new_amount,
            c.amount_delta,
            c.refund_amount,
            c.committed_mrr_after,
            c.forward_mrr_after,
            c.currency,
            occurred,
            c.reason,
            list(c.flags),
            resolved.api_version,
        )
    obj = _map(_map(doc.get("data")).get("object"))
    version = (occurred, event_id)
    _read_models(effects, resolved, obj, version)
    return effects


# --------------------------------------------------------------------------- read models
def _read_models(
    effects: Effects, ev: NormalisedEvent, obj: Mapping[str, Any], version: tuple[Any, ...]
) -> None:
    if ev.subscription is not None and ev.event_type.startswith("customer.subscription."):
        effects.add("subscriptions", _subscription_row(ev, ev.subscription, version))
    elif ev.schedule is not None:
        effects.add("subscription_schedules", _schedule_row(ev, version))
    elif ev.invoice is not None:
        # A preview (invoice.upcoming, no id) is no invoice: skipped by rule.
        if ev.invoice.id is not None and ev.event_type not in PREVIEW_INVOICE_EVENTS:
            effects.add("payments", _payment_row(ev.invoice, obj, version))
    elif ev.invoice_payment is not None:
        ip = ev.invoice_payment
        if ip.id is not None:
            effects.add(
                "invoice_payments",
                (
                    ip.id,
                    ip.invoice_id,
                    ip.payment_intent_id,
                    ip.charge_id,
                    ip.amount_paid,
                    ip.currency,
                    ip.status,
                    ts(ip.paid_at),
                    *version,
                ),
            )
    elif ev.charge is not None:
        charge = ev.charge
        for refund in charge.refunds:
            _add_refund(effects, refund, charge.customer_id, version)
        if charge.id is not None:
            refunded = charge.amount_refunded
            effects.add(
                "charges",
                (
                    charge.id,
                    charge.payment_intent_id,
                    charge.invoice_id,
                    charge.customer_id,
                    charge.amount,
                    charge.currency,
                    charge.status,
                    ts(charge.created),
                    refunded,
                    version[0] if refunded is not None and refunded > 0 else None,
                    *version,
                ),
            )
    elif ev.refund is not None:
        _add_refund(effects, ev.refund, _str(obj.get("customer")), version)
    elif ev.credit_note is not None:
        effects.add("credit_notes", _credit_note_row(ev, version))
    elif ev.customer is not None and ev.event_type.startswith("customer."):
        _customer_rows(effects, ev, obj, version)
    elif ev.payment_method is not None:
        pm = ev.payment_method
        if pm.id is not None:
            effects.add(
                "payment_methods",
                (
                    pm.id,
                    pm.customer_id,
                    pm.type,
                    pm.card_brand,
                    pm.card_last4,
                    pm.card_exp_month,
                    pm.card_exp_year,
                    *version,
                ),
            )
    elif obj.get("object") == "tax_id" and _str(obj.get("id")) is not None:
        customer = obj.get("customer")
        customer_id = _str(customer) or _str(_map(customer).get("id"))
        effects.add(
            "tax_ids",
            (
                obj["id"],
                customer_id,
                _str(obj.get("type")),
                _str(obj.get("value")),
                ev.event_type.endswith(".deleted"),
                *version,
            ),
        )


def _plan_name(items: tuple[SubscriptionItem, ...]) -> str | None:
    names = [i.plan for i in items if i.plan is not None and i.usage_type != "metered"]
    return "+".join(names) if names else None


def _subscription_row(
    ev: NormalisedEvent, sub: SubscriptionSnapshot, version: tuple[Any, ...]
) -> tuple[Any, ...]:
    mrr = compute_mrr(sub, as_of=ev.created)
    licensed = [i for i in sub.items if i.usage_type != "metered"]
    first = licensed[0] if licensed else (sub.items[0] if sub.items else None)
    upcoming = scheduled_items(sub, ev.created)
    paused = sub.status == "paused" or sub.pause_collection is not None
    return (
        sub.id,
        sub.customer_id,
        sub.status,
        _plan_name(sub.items),
        first.price_id if first else None,
        first.product_id if first else None,
        first.unit_amount if first else None,
        first.quantity if first else None,
        first.interval if first else None,
        first.interval_count if first else None,
        mrr.currency,
        ts(sub.current_period_start),
        ts(sub.current_period_end),
        ts(sub.trial_start),
        ts(sub.trial_end),
        sub.cancel_at_period_end,
        ts(sub.cancel_at),
        ts(sub.canceled_at),
        ts(sub.ended_at),
        sub.cancellation_reason or sub.cancellation_feedback,
        paused,
        sub.schedule_id,
        _plan_name(upcoming) if upcoming is not None else None,
        mrr.forward if upcoming is not None else None,
        ts(sub.current_period_end) if upcoming is not None else None,
        mrr.committed,
        mrr.forward,
        list(mrr.flags),
        ts(sub.start_date or sub.created),
        *version,
    )


def _phase_plan(phase: SchedulePhase | None) -> str | None:
    if phase is None:
        return None
    names = [
        (i.price.plan if i.price is not None else None) or i.price_id or "?" for i in phase.items
    ]
    return "+".join(names) if names else None


def _schedule_row(ev: NormalisedEvent, version: tuple[Any, ...]) -> tuple[Any, ...]:
    schedule = ev.schedule
    assert schedule is not None
    current, following = current_and_next_phase(schedule, ev.created)
    return (
        schedule.id or f"unknown:{ev.event_id}",
        schedule.subscription_id or schedule.released_subscription,
        schedule.customer_id,
        schedule.status,
        _phase_plan(current),
        _phase_plan(following),
        phase_mrr(following) if following is not None else None,
        ts(following.start_date) if following is not None else None,
        ts(schedule.released_at),
        ts(schedule.canceled_at),
        *version,
    )


def _payment_row(
    inv: InvoiceSnapshot, obj: Mapping[str, Any], version: tuple[Any, ...]
) -> tuple[Any, ...]:
    tax = inv.tax or 0
    total_ex = _int(obj.get("total_excluding_tax"))
    if total_ex is None and inv.total is not None:
        total_ex = inv.total - tax
    starting, ending = _int(obj.get("starting_balance")), _int(obj.get("ending_balance"))
    if starting is not None and ending is not None:
        from_credit = max(0, ending - starting)
    elif inv.total is not None and inv.amount_due is not None:
        from_credit = max(0, inv.total - inv.amount_due)
    else:
        from_credit = None
    return (
        inv.id,
        inv.customer_id,
        inv.subscription_id,
        _str(obj.get("number")),
        inv.status,
        inv.billing_reason,
        inv.currency,
        inv.amount_due,
        inv.amount_paid,
        inv.amount_remaining,
        inv.total,
        inv.subtotal,
        inv.tax,
        total_ex,
        from_credit,
        inv.attempt_count,
        _str(obj.get("hosted_invoice_url")),
        _str(obj.get("invoice_pdf")),
        ts(inv.period_start),
        ts(inv.period_end),
        ts(_int(obj.get("created"))),
        ts(inv.marked_uncollectible_at),
        inv.charge_id,
        inv.payment_intent_id,
        ts(inv.paid_at),
        *version,
    )


def _add_refund(
    effects: Effects, refund: RefundSnapshot, customer_id: str | None, version: tuple[Any, ...]
) -> None:
    if refund.id is None:
        return
    effects.add(
        "refunds",
        (
            refund.id,
            refund.charge_id,
            refund.payment_intent_id,
            customer_id,
            refund.amount,
            refund.currency,
            refund.status,
            refund.reason,
            ts(refund.created),
            *version,
        ),
    )


def _credit_note_row(ev: NormalisedEvent, version: tuple[Any, ...]) -> tuple[Any, ...]:
    note = ev.credit_note
    assert note is not None
    return (
        note.id or f"unknown:{ev.event_id}",
        note.invoice_id,
        note.customer_id,
        note.amount,
        note.total,
        note.currency,
        note.status,
        note.type,
        note.reason,
        list(note.refund_ids),
        note.refunded_amount,
        note.post_payment_amount,
        note.out_of_band_amount,
        ts(note.created),
        ts(note.voided_at),
        *version,
    )


def _customer_rows(
    effects: Effects, ev: NormalisedEvent, obj: Mapping[str, Any], version: tuple[Any, ...]
) -> None:
    customer = ev.customer
    assert customer is not None
    if customer.id is None:
        return
    address = customer.address
    occurred: datetime = version[0]
    effects.add(
        "accounts",
        (
            customer.id,
            ev.tenant_id,
            customer.name,
            customer.email,
            _str(obj.get("phone")),
            json.dumps(address, sort_keys=True) if address is not None else None,
            _upper(_map(address).get("country")),
            customer.tax_exempt,
            customer.currency,
            customer.default_payment_method or customer.default_source,
            customer.delinquent,
            ts(_int(obj.get("created"))),
            occurred if customer.deleted else None,
            *version,
        ),
    )
