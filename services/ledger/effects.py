"""What one archived Stripe event does to the ledger, computed from its bytes alone.

``project_event`` is pure (no I/O, no clock), so it can run anywhere (a process pool for
replays) and gives the same rows for the same bytes, which is the first half of the ledger
being a function of the archive. The second half, applying rows so that arrival order does
not matter, is :mod:`services.ledger.projection`.

Rows are named (``BillingEventRow``, ``ReadModel.row(column=value, ...)``), checked against
the column lists of :mod:`services.ledger.tables` (and those against the tables by a test);
timestamps are aware UTC datetimes; money is integer minor units with an upper-case currency.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from services.ledger.domain import UnsupportedApiVersion, classify, compute_mrr, resolve
from services.ledger.domain.classifier import PREVIEW_INVOICE_EVENTS
from services.ledger.domain.mrr import (
    current_and_next_phase,
    is_paused,
    phase_mrr,
    scheduled_items,
)
from services.ledger.domain.normalised import (
    InvoiceSnapshot,
    NormalisedEvent,
    RefundSnapshot,
    SubscriptionSnapshot,
)
from services.ledger.domain.resolvers import API_VERSION_NEWER_THAN_KNOWN
from services.ledger.domain.resolvers._common import as_map
from services.ledger.domain.rules import phase_plan_name, plan_name
from services.ledger.tables import (
    ACCOUNTS,
    CHARGES,
    CREDIT_NOTES,
    INVOICE_PAYMENTS,
    PAYMENT_METHODS,
    PAYMENTS,
    REFUNDS,
    SUBSCRIPTION_SCHEDULES,
    SUBSCRIPTIONS,
    TAX_IDS,
    BillingEventRow,
    UnsupportedEventRow,
)

#: ``ledger.unsupported_events.severity``: ``Critical`` = not classified (no billing row);
#: ``Warning`` = a version newer than every known family, classified by the newest resolver.
SEVERITY_CRITICAL = "Critical"
SEVERITY_WARNING = "Warning"

# orjson parses Stripe-sized documents about 3x faster than the standard library.
_loads: Any = orjson.loads


def tune_gc_for_projection() -> None:
    """Collect cyclic garbage less often in a projecting process.

    A parsed payload is ~100 container objects, none of them in a cycle, so the default
    threshold (a collection every 700 allocations) spent ~10% of a replay's CPU finding
    nothing. Raising it delays only the collection of real cycles (rare here), by a bounded
    number of allocations: memory stays bounded.
    """
    gc.set_threshold(50_000, 20, 50)


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


def _version(version: tuple[Any, ...]) -> dict[str, Any]:
    """The version columns of a read-model row: the event's (created, id)."""
    return {"state_event_created": version[0], "state_event_id": version[1]}


#: Datetimes by epoch second: an event's times recur across the events of its object (an
#: invoice's period and creation in each of its four events), and ``fromtimestamp`` costs
#: ~1 us. Datetimes are immutable, so sharing one is safe. Bounded: cleared when full.
_DATETIMES: dict[int, datetime] = {}
_DATETIMES_LIMIT = 1 << 16


def ts(value: int | None) -> datetime | None:
    """Stripe epoch seconds as an aware UTC datetime."""
    if value is None:
        return None
    if type(value) is not int:  # only plain ints are cache keys (True == 1, 1.0 == 1)
        return datetime.fromtimestamp(value, UTC)
    found = _DATETIMES.get(value)
    if found is None:
        if len(_DATETIMES) >= _DATETIMES_LIMIT:
            _DATETIMES.clear()
        found = _DATETIMES[value] = datetime.fromtimestamp(value, UTC)
    return found


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _map(value: object) -> Mapping[str, Any]:
    return as_map(value)


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
        effects.unsupported = UnsupportedEventRow(
            stripe_event_id=event_id,
            stripe_event_type=resolved.event_type,
            api_version=resolved.api_version,
            reason=resolved.reason,
            occurred_at=ts(created),
            severity=SEVERITY_CRITICAL,
        )
        return effects
    occurred = ts(resolved.created) or datetime.fromtimestamp(0, UTC)
    effects = Effects(event_id, occurred)
    classification = classify(resolved)
    if classification is not None and API_VERSION_NEWER_THAN_KNOWN in resolved.resolution_flags:
        # Classified with the newest resolver, and reported so an operator checks Stripe's
        # changelog: an UnsupportedStripeApiVersion-family Warning for drift (only for events
        # the ledger classifies; the others write nothing anyway).
        effects.unsupported = UnsupportedEventRow(
            stripe_event_id=event_id,
            stripe_event_type=resolved.event_type,
            api_version=resolved.api_version,
            reason=f"api_version {resolved.api_version!r} is newer than every known family;"
            f" classified as {resolved.family!r}",
            occurred_at=occurred,
            severity=SEVERITY_WARNING,
            resolved_family=resolved.family,
        )
    if classification is not None:
        c = classification
        effects.billing = BillingEventRow(
            stripe_event_id=event_id,
            stripe_event_type=c.stripe_event_type,
            event_type=c.event_type.value,
            tenant_id=c.tenant_id,
            stripe_customer_id=c.customer_id,
            subscription_id=c.subscription_id,
            from_plan=c.from_plan,
            to_plan=c.to_plan,
            previous_amount=c.previous_amount,
            new_amount=c.new_amount,
            amount_delta=c.amount_delta,
            refund_amount=c.refund_amount,
            committed_mrr=c.committed_mrr_after,
            forward_mrr=c.forward_mrr_after,
            currency=c.currency,
            occurred_at=occurred,
            reason=c.reason,
            flags=list(c.flags),
            api_version=resolved.api_version,
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
                INVOICE_PAYMENTS.row(
                    invoice_payment_id=ip.id,
                    invoice_id=ip.invoice_id,
                    payment_intent_id=ip.payment_intent_id,
                    charge_id=ip.charge_id,
                    amount_paid=ip.amount_paid,
                    currency=ip.currency,
                    status=ip.status,
                    paid_at=ts(ip.paid_at),
                    **_version(version),
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
                CHARGES.row(
                    charge_id=charge.id,
                    payment_intent_id=charge.payment_intent_id,
                    invoice_id=charge.invoice_id,
                    stripe_customer_id=charge.customer_id,
                    amount=charge.amount,
                    currency=charge.currency,
                    status=charge.status,
                    charge_created=ts(charge.created),
                    amount_refunded=refunded,
                    refunded_at=version[0] if refunded is not None and refunded > 0 else None,
                    **_version(version),
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
                PAYMENT_METHODS.row(
                    payment_method_id=pm.id,
                    stripe_customer_id=pm.customer_id,
                    type=pm.type,
                    brand=pm.card_brand,
                    last4=pm.card_last4,
                    exp_month=pm.card_exp_month,
                    exp_year=pm.card_exp_year,
                    **_version(version),
                ),
            )
    elif obj.get("object") == "tax_id" and _str(obj.get("id")) is not None:
        customer = obj.get("customer")
        customer_id = _str(customer) or _str(_map(customer).get("id"))
        effects.add(
            "tax_ids",
            TAX_IDS.row(
                tax_id=obj["id"],
                stripe_customer_id=customer_id,
                type=_str(obj.get("type")),
                value=_str(obj.get("value")),
                deleted=ev.event_type.endswith(".deleted"),
                **_version(version),
            ),
        )


def _subscription_row(
    ev: NormalisedEvent, sub: SubscriptionSnapshot, version: tuple[Any, ...]
) -> tuple[Any, ...]:
    mrr = compute_mrr(sub, as_of=ev.created)
    licensed = [i for i in sub.items if i.usage_type != "metered"]
    first = licensed[0] if licensed else (sub.items[0] if sub.items else None)
    upcoming = scheduled_items(sub, ev.created)
    paused = is_paused(sub)
    return SUBSCRIPTIONS.row(
        subscription_id=sub.id,
        stripe_customer_id=sub.customer_id,
        status=sub.status,
        plan=plan_name(sub.items),
        price_id=first.price_id if first else None,
        product_id=first.product_id if first else None,
        unit_amount=first.unit_amount if first else None,
        quantity=first.quantity if first else None,
        interval=first.interval if first else None,
        interval_count=first.interval_count if first else None,
        currency=mrr.currency,
        current_period_start=ts(sub.current_period_start),
        current_period_end=ts(sub.current_period_end),
        trial_start=ts(sub.trial_start),
        trial_end=ts(sub.trial_end),
        cancel_at_period_end=sub.cancel_at_period_end,
        cancel_at=ts(sub.cancel_at),
        canceled_at=ts(sub.canceled_at),
        ended_at=ts(sub.ended_at),
        cancellation_reason=sub.cancellation_reason or sub.cancellation_feedback,
        paused=paused,
        schedule_id=sub.schedule_id,
        pending_plan=plan_name(upcoming) if upcoming is not None else None,
        pending_mrr=mrr.forward if upcoming is not None else None,
        pending_change_at=ts(sub.current_period_end) if upcoming is not None else None,
        committed_mrr=mrr.committed,
        forward_mrr=mrr.forward,
        mrr_flags=list(mrr.flags),
        subscribed_since=ts(sub.start_date or sub.created),
        **_version(version),
    )


def _schedule_row(ev: NormalisedEvent, version: tuple[Any, ...]) -> tuple[Any, ...]:
    schedule = ev.schedule
    assert schedule is not None
    current, following = current_and_next_phase(schedule, ev.created)
    return SUBSCRIPTION_SCHEDULES.row(
        schedule_id=schedule.id or f"unknown:{ev.event_id}",
        subscription_id=schedule.subscription_id or schedule.released_subscription,
        stripe_customer_id=schedule.customer_id,
        status=schedule.status,
        current_plan=phase_plan_name(current),
        next_plan=phase_plan_name(following),
        next_mrr=phase_mrr(following) if following is not None else None,
        next_phase_start=ts(following.start_date) if following is not None else None,
        released_at=ts(schedule.released_at),
        canceled_at=ts(schedule.canceled_at),
        **_version(version),
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
    return PAYMENTS.row(
        invoice_id=inv.id,
        stripe_customer_id=inv.customer_id,
        subscription_id=inv.subscription_id,
        number=_str(obj.get("number")),
        status=inv.status,
        billing_reason=inv.billing_reason,
        currency=inv.currency,
        amount_due=inv.amount_due,
        amount_paid=inv.amount_paid,
        amount_remaining=inv.amount_remaining,
        total=inv.total,
        subtotal=inv.subtotal,
        tax=inv.tax,
        amount_ex_tax=total_ex,
        amount_from_credit_balance=from_credit,
        attempt_count=inv.attempt_count,
        hosted_invoice_url=_str(obj.get("hosted_invoice_url")),
        invoice_pdf=_str(obj.get("invoice_pdf")),
        period_start=ts(inv.period_start),
        period_end=ts(inv.period_end),
        invoice_created=ts(_int(obj.get("created"))),
        marked_uncollectible_at=ts(inv.marked_uncollectible_at),
        invoice_charge_id=inv.charge_id,
        invoice_payment_intent_id=inv.payment_intent_id,
        paid_at=ts(inv.paid_at),
        **_version(version),
    )


def _add_refund(
    effects: Effects, refund: RefundSnapshot, customer_id: str | None, version: tuple[Any, ...]
) -> None:
    if refund.id is None:
        return
    effects.add(
        "refunds",
        REFUNDS.row(
            refund_id=refund.id,
            charge_id=refund.charge_id,
            payment_intent_id=refund.payment_intent_id,
            stripe_customer_id=customer_id,
            amount=refund.amount,
            currency=refund.currency,
            status=refund.status,
            reason=refund.reason,
            refund_created=ts(refund.created),
            **_version(version),
        ),
    )


def _credit_note_row(ev: NormalisedEvent, version: tuple[Any, ...]) -> tuple[Any, ...]:
    note = ev.credit_note
    assert note is not None
    return CREDIT_NOTES.row(
        credit_note_id=note.id or f"unknown:{ev.event_id}",
        invoice_id=note.invoice_id,
        stripe_customer_id=note.customer_id,
        amount=note.amount,
        total=note.total,
        currency=note.currency,
        status=note.status,
        type=note.type,
        reason=note.reason,
        refund_ids=list(note.refund_ids),
        refunded_amount=note.refunded_amount,
        post_payment_amount=note.post_payment_amount,
        out_of_band_amount=note.out_of_band_amount,
        credit_note_created=ts(note.created),
        voided_at=ts(note.voided_at),
        **_version(version),
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
        ACCOUNTS.row(
            stripe_customer_id=customer.id,
            tenant_id=ev.tenant_id,
            name=customer.name,
            email=customer.email,
            phone=_str(obj.get("phone")),
            address=json.dumps(address, sort_keys=True) if address is not None else None,
            address_country=_upper(_map(address).get("country")),
            tax_exempt=customer.tax_exempt,
            currency=customer.currency,
            default_payment_method_id=customer.default_payment_method or customer.default_source,
            delinquent=customer.delinquent,
            stripe_created_at=ts(_int(obj.get("created"))),
            deleted_at=occurred if customer.deleted else None,
            **_version(version),
        ),
    )
