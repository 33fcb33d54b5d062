"""The ledger's normalised input: typed, immutable snapshots built by the payload resolvers.

Every field is optional unless the resolver can always fill it: real payloads are missing
fields, carry extra ones, and sometimes contradict their event type. Amounts are integer
minor units; currencies are upper-case ISO-4217 codes or ``None`` when the payload has none.
Timestamps are Stripe epoch seconds (``int``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = [
    "ChargeSnapshot",
    "CreditNoteSnapshot",
    "CustomerSnapshot",
    "DiscountSnapshot",
    "InvoicePaymentSnapshot",
    "InvoiceSnapshot",
    "NormalisedEvent",
    "PauseCollection",
    "PaymentMethodSnapshot",
    "PendingUpdate",
    "RefundSnapshot",
    "ScheduleItem",
    "SchedulePhase",
    "ScheduleSnapshot",
    "SubscriptionItem",
    "SubscriptionSnapshot",
    "TaxRateSnapshot",
]


@dataclass(frozen=True, slots=True)
class DiscountSnapshot:
    """A discount/coupon. ``percent_off`` and ``amount_off`` are both ``None`` when the payload
    only references the coupon by id (terms unknown: ignored by MRR, flagged)."""

    id: str | None
    coupon_id: str | None
    percent_off: Decimal | None = None
    amount_off: int | None = None
    currency: str | None = None
    duration: str | None = None  # "once" | "repeating" | "forever"
    duration_in_months: int | None = None
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True, slots=True)
class TaxRateSnapshot:
    """A tax rate on a subscription or item. ``percentage`` is ``None`` when the payload only
    references the rate by id (then an inclusive price's net amount is unknown: flagged)."""

    id: str | None
    percentage: Decimal | None
    inclusive: bool | None


@dataclass(frozen=True, slots=True)
class SubscriptionItem:
    """One priced line of a subscription (``subscription_item`` / legacy ``plan``)."""

    id: str | None
    price_id: str | None
    product_id: str | None
    plan: str | None  # display name: lookup_key, else nickname, else plan.name, else price id
    nickname: str | None
    lookup_key: str | None
    unit_amount: int | None
    unit_amount_decimal: Decimal | None
    currency: str | None
    interval: str | None  # "day" | "week" | "month" | "year"
    interval_count: int
    quantity: int | None
    usage_type: str | None = None  # "licensed" | "metered"
    billing_scheme: str | None = None  # "per_unit" | "tiered"
    current_period_start: int | None = None  # basil: periods live on items
    current_period_end: int | None = None
    discounts: tuple[DiscountSnapshot, ...] = ()
    discount_refs_unresolved: int = 0  # item discounts referenced only by id
    tax_behavior: str | None = None  # price.tax_behavior: "inclusive" | "exclusive" | ...
    tax_rates: tuple[TaxRateSnapshot, ...] = ()  # the item's own rates (override the default)
    transform_divide_by: int | None = None  # package pricing: billed qty = round(qty / n)
    transform_round: str | None = None  # "up" | "down"
    currency_option_missing: bool = False  # another currency wanted, no currency_options entry


@dataclass(frozen=True, slots=True)
class PauseCollection:
    behavior: str | None
    resumes_at: int | None


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    """``subscription.pending_update``: changes waiting for a payment to succeed."""

    subscription_items: tuple[SubscriptionItem, ...]
    expires_at: int | None
    trial_end: int | None
    #: The discounts the subscription will have once the update applies (dahlia and later:
    #: ``pending_update.discount``/``discounts``); ``None`` when the payload says nothing
    #: about discounts (earlier families, or no discount change pending).
    discounts: tuple[DiscountSnapshot, ...] | None = None
    discount_refs_unresolved: int = 0


@dataclass(frozen=True, slots=True)
class ScheduleItem:
    price_id: str | None
    quantity: int | None
    price: SubscriptionItem | None  # only when the phase item's price is expanded


@dataclass(frozen=True, slots=True)
class SchedulePhase:
    start_date: int | None
    end_date: int | None
    items: tuple[ScheduleItem, ...]
    currency: str | None = None
    discounts: tuple[DiscountSnapshot, ...] = ()  # the phase's own (phase.discounts/coupon)
    discount_refs_unresolved: int = 0


@dataclass(frozen=True, slots=True)
class ScheduleSnapshot:
    id: str | None
    subscription_id: str | None
    customer_id: str | None
    status: str | None
    end_behavior: str | None
    current_phase_start: int | None
    current_phase_end: int | None
    phases: tuple[SchedulePhase, ...]
    released_at: int | None = None
    released_subscription: str | None = None
    canceled_at: int | None = None
    completed_at: int | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionSnapshot:
    id: str | None
    customer_id: str | None
    status: str | None
    currency: str | None
    items: tuple[SubscriptionItem, ...]
    discounts: tuple[DiscountSnapshot, ...] = ()
    discount_refs_unresolved: int = 0  # discounts referenced only by id (terms unknown)
    default_tax_rates: tuple[TaxRateSnapshot, ...] = ()
    automatic_tax: bool = False  # automatic_tax.enabled: Stripe Tax computes the rates
    created: int | None = None
    start_date: int | None = None
    trial_start: int | None = None
    trial_end: int | None = None
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    canceled_at: int | None = None
    ended_at: int | None = None
    current_period_start: int | None = None
    current_period_end: int | None = None
    pause_collection: PauseCollection | None = None
    pending_update: PendingUpdate | None = None
    schedule_id: str | None = None
    schedule: ScheduleSnapshot | None = None  # only when expanded in the payload
    cancellation_reason: str | None = None
    cancellation_feedback: str | None = None
    default_payment_method: str | None = None
    latest_invoice_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InvoiceSnapshot:
    id: str | None
    customer_id: str | None
    subscription_id: str | None
    status: str | None
    billing_reason: str | None
    currency: str | None
    amount_due: int | None
    amount_paid: int | None
    amount_remaining: int | None
    total: int | None
    subtotal: int | None
    tax: int | None
    attempt_count: int | None
    attempted: bool | None
    paid: bool | None
    charge_id: str | None  # legacy only; basil links payments through invoice_payment
    payment_intent_id: str | None
    period_start: int | None
    period_end: int | None
    paid_at: int | None
    marked_uncollectible_at: int | None
    paid_out_of_band: bool | None = None
    line_plans: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RefundSnapshot:
    id: str | None
    charge_id: str | None
    payment_intent_id: str | None
    amount: int | None
    currency: str | None
    status: str | None
    reason: str | None
    created: int | None


@dataclass(frozen=True, slots=True)
class ChargeSnapshot:
    id: str | None
    customer_id: str | None
    invoice_id: str | None
    payment_intent_id: str | None
    amount: int | None
    amount_captured: int | None
    amount_refunded: int | None
    refunded: bool | None
    currency: str | None
    status: str | None
    paid: bool | None
    failure_code: str | None
    failure_message: str | None
    created: int | None
    refunds: tuple[RefundSnapshot, ...] = ()


@dataclass(frozen=True, slots=True)
class CreditNoteSnapshot:
    id: str | None
    invoice_id: str | None
    customer_id: str | None
    amount: int | None
    total: int | None
    currency: str | None
    status: str | None
    type: str | None  # "pre_payment" | "post_payment" | "mixed"
    reason: str | None
    refund_ids: tuple[str, ...]
    refunded_amount: int | None
    out_of_band_amount: int | None
    pre_payment_amount: int | None
    post_payment_amount: int | None
    created: int | None
    effective_at: int | None
    voided_at: int | None


@dataclass(frozen=True, slots=True)
class CustomerSnapshot:
    id: str | None
    email: str | None
    name: str | None
    address: dict[str, Any] | None
    tax_exempt: str | None
    tax_ids: tuple[str, ...]
    default_payment_method: str | None
    default_source: str | None
    currency: str | None
    delinquent: bool | None
    deleted: bool
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PaymentMethodSnapshot:
    id: str | None
    customer_id: str | None
    type: str | None
    card_brand: str | None
    card_last4: str | None
    card_exp_month: int | None
    card_exp_year: int | None


@dataclass(frozen=True, slots=True)
class InvoicePaymentSnapshot:
    id: str | None
    invoice_id: str | None
    amount_paid: int | None
    amount_requested: int | None
    currency: str | None
    status: str | None
    payment_intent_id: str | None
    charge_id: str | None
    paid_at: int | None
    is_default: bool | None


@dataclass(frozen=True, slots=True)
class NormalisedEvent:
    """One Stripe event as the ledger sees it, independent of the API version it came in.

    ``subscription``/``invoice``/... hold the snapshot of ``data.object`` when it is of that
    kind. ``previous_subscription`` (and ``previous_schedule``) is the same object with
    ``data.previous_attributes`` laid over it (top-level keys replaced), i.e. the state
    before the change, for ``*.updated`` events that carry previous attributes.
    """

    event_id: str | None
    event_type: str
    created: int
    api_version: str | None
    family: str
    object_type: str | None
    object_id: str | None
    customer_id: str | None
    tenant_id: str | None
    livemode: bool | None
    previous_attributes: dict[str, Any] = field(default_factory=dict)
    subscription: SubscriptionSnapshot | None = None
    previous_subscription: SubscriptionSnapshot | None = None
    invoice: InvoiceSnapshot | None = None
    charge: ChargeSnapshot | None = None
    refund: RefundSnapshot | None = None
    credit_note: CreditNoteSnapshot | None = None
    customer: CustomerSnapshot | None = None
    payment_method: PaymentMethodSnapshot | None = None
    invoice_payment: InvoicePaymentSnapshot | None = None
    schedule: ScheduleSnapshot | None = None
    previous_schedule: ScheduleSnapshot | None = None
    #: How the payload was resolved, when it is worth a flag on the row (for example
    #: ``api_version_newer_than_known``: classified by the newest family's resolver).
    resolution_flags: tuple[str, ...] = ()
