"""Compact mutable state of the simulated Stripe objects.

Only small scalar state is kept per customer; full Stripe-shaped dicts are rendered on demand
by the per-API-version renderers. This keeps a 50,000-customer stream within modest memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True, frozen=True)
class Product:
    """A catalog product (a plan tier)."""

    id: str
    name: str
    created: int


@dataclass(slots=True, frozen=True)
class Price:
    """A recurring price of a product in one currency and interval."""

    id: str
    product: Product
    tier: int
    currency: str
    unit_amount: int
    interval: str
    interval_count: int
    created: int
    nickname: str


@dataclass(slots=True, frozen=True)
class Coupon:
    """A coupon: either ``percent_off`` or ``amount_off`` (in ``currency``) is set."""

    id: str
    name: str
    created: int
    duration: str
    duration_in_months: int | None = None
    percent_off: float | None = None
    amount_off: int | None = None
    currency: str | None = None


@dataclass(slots=True)
class PaymentMethod:
    """A card attached to a customer."""

    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str
    created: int
    customer_id: str | None


@dataclass(slots=True)
class Discount:
    """A coupon applied to a customer's subscription."""

    id: str
    coupon: Coupon
    customer_id: str
    subscription_id: str | None
    start: int
    end: int | None


@dataclass(slots=True)
class Customer:
    """A customer (one tenant of the billed product)."""

    idx: int
    id: str
    api_version: str
    basil: bool
    currency: str
    created: int
    name: str
    email: str
    tenant_id: str
    invoice_prefix: str
    address: dict[str, str | None] | None = None
    default_pm: PaymentMethod | None = None
    next_invoice_sequence: int = 1
    balance: int = 0
    tax_ids: list[str] = field(default_factory=list)
    currency_set: bool = False


@dataclass(slots=True)
class Subscription:
    """A single-item subscription."""

    id: str
    item_id: str
    item_created: int
    customer_id: str
    price: Price
    quantity: int
    status: str
    created: int
    start_date: int
    billing_cycle_anchor: int
    period_start: int
    period_end: int
    trial_start: int | None = None
    trial_end: int | None = None
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    canceled_at: int | None = None
    ended_at: int | None = None
    cancel_reason: str | None = None
    cancel_feedback: str | None = None
    pause_behavior: str | None = None
    schedule_id: str | None = None
    discount: Discount | None = None
    latest_invoice_id: str | None = None
    default_pm_id: str | None = None


@dataclass(slots=True)
class SchedulePhase:
    """One phase of a subscription schedule."""

    start: int
    end: int
    price: Price
    quantity: int


@dataclass(slots=True)
class Schedule:
    """A subscription schedule used for scheduled downgrades."""

    id: str
    subscription_id: str
    customer_id: str
    created: int
    phases: list[SchedulePhase]
    status: str = "active"
    released_at: int | None = None
    released_subscription: str | None = None
    canceled_at: int | None = None
    completed_at: int | None = None


@dataclass(slots=True)
class Line:
    """An invoice line."""

    id: str
    price: Price
    quantity: int
    amount: int
    period_start: int
    period_end: int
    proration: bool
    description: str
    subscription_item: str | None
    invoice_item: str | None = None
    discount_amount: int = 0


@dataclass(slots=True)
class Refund:
    """A refund of (part of) a charge."""

    id: str
    charge_id: str
    payment_intent_id: str | None
    amount: int
    currency: str
    created: int
    reason: str | None
    customer_id: str | None
    balance_transaction: str


@dataclass(slots=True)
class Charge:
    """A card charge (succeeded or failed)."""

    id: str
    payment_intent_id: str
    invoice_id: str | None
    customer_id: str
    amount: int
    currency: str
    created: int
    status: str
    pm: PaymentMethod
    balance_transaction: str | None
    amount_refunded: int = 0
    refunds: list[Refund] = field(default_factory=list)


@dataclass(slots=True)
class PaymentIntent:
    """A payment intent paying one invoice."""

    id: str
    customer_id: str
    invoice_id: str | None
    amount: int
    currency: str
    created: int
    status: str = "requires_payment_method"
    charges: list[Charge] = field(default_factory=list)
    pm: PaymentMethod | None = None
    last_error: Charge | None = None


@dataclass(slots=True)
class Invoice:
    """An invoice of a subscription."""

    id: str
    number: str
    customer_id: str
    subscription_id: str | None
    billing_reason: str
    created: int
    currency: str
    lines: list[Line]
    period_start: int
    period_end: int
    status: str = "draft"
    discount: Discount | None = None
    attempt_count: int = 0
    finalized_at: int | None = None
    paid_at: int | None = None
    voided_at: int | None = None
    marked_uncollectible_at: int | None = None
    amount_paid: int = 0
    payment_intent: PaymentIntent | None = None
    next_payment_attempt: int | None = None
    post_payment_credit_notes_amount: int = 0
    auto_advance: bool = True
    payment_id: str | None = None

    @property
    def subtotal(self) -> int:
        """Sum of the line amounts before discounts."""
        return sum(line.amount for line in self.lines)

    @property
    def discount_amount(self) -> int:
        """Total discount over all lines."""
        return sum(line.discount_amount for line in self.lines)

    @property
    def total(self) -> int:
        """Amount after discounts (never below zero; credits go to the customer balance)."""
        return max(0, self.subtotal - self.discount_amount)

    @property
    def charge(self) -> Charge | None:
        """The latest charge attempt of the invoice's payment intent."""
        pi = self.payment_intent
        return pi.charges[-1] if pi and pi.charges else None


@dataclass(slots=True)
class CreditNote:
    """A post-payment credit note crediting part of an invoice to the customer balance."""

    id: str
    number: str
    invoice: Invoice
    customer_id: str
    amount: int
    currency: str
    created: int
    reason: str
    line_id: str
    balance_transaction: str
    refund_id: str | None = None


@dataclass(slots=True)
class TaxId:
    """A customer tax id (VAT number)."""

    id: str
    customer_id: str
    country: str
    type: str
    value: str
    created: int
