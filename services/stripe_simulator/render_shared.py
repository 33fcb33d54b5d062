"""One renderer for every API version family.

Each object is built once; keys present in only some families carry :data:`OMIT` in the
others and are dropped by :func:`_pack`, so the key order of every family is exactly as Stripe
sends it. A family is a :class:`~.config.Family` level: each one has its parent's shapes plus
its own differences, tested here as ``self.BASIL``/``self.CLOVER``/``self.DAHLIA`` (true from
that family on). ``render_legacy`` (2020-08-27), ``render_basil`` (2025-03-31.basil),
``render_clover``, ``render_dahlia`` and ``render_endive`` hold the instances and describe
what each family changes.
"""

from __future__ import annotations

from typing import Any

from . import render_common as rc
from .config import Family
from .model import (
    Charge,
    Coupon,
    CreditNote,
    Customer,
    Discount,
    Invoice,
    Line,
    PaymentIntent,
    PaymentMethod,
    Refund,
    Schedule,
    Subscription,
    TaxId,
)
from .render_common import JSON


class _Omit:
    __slots__ = ()

    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = _Omit()
"""Value of a key the rendered family does not have."""

_ISSUER_SELF: JSON = {"type": "self"}


def _pack(d: JSON) -> JSON:
    """``d`` without its :data:`OMIT` entries (order kept)."""
    return {k: v for k, v in d.items() if v is not OMIT}


def current_phase(s: Schedule, now: int) -> JSON | None:
    """The phase containing ``now`` (``None`` once released or outside all phases)."""
    if s.status != "active":
        return None
    for ph in s.phases:
        if ph.start <= now < ph.end:
            return {"end_date": ph.end, "start_date": ph.start}
    return None


class FamilyRenderer:
    """Renders model state as Stripe objects of one API version family."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self.BASIL = family >= Family.BASIL
        self.CLOVER = family >= Family.CLOVER
        self.DAHLIA = family >= Family.DAHLIA

    def _billing_mode(self) -> JSON:
        """``billing_mode`` (basil: classic; clover made flexible the default for new
        subscriptions and schedules)."""
        if self.CLOVER:
            return {"flexible": {"proration_discounts": "included"}, "type": "flexible"}
        return {"flexible": None, "type": "classic"}

    # Also from clover on (later clover releases, rendered for the whole family):
    # ``customer_account`` on v1 objects (2025-12-15) and the credit-note refund ``type`` /
    # ``payment_record_refund`` (2025-10-29).

    def _automatic_tax(self) -> JSON:
        if self.BASIL:
            return {"disabled_reason": None, "enabled": False, "liability": None}
        return {"enabled": False}

    def coupon(self, c: Coupon) -> JSON:
        """Coupon object (unchanged by basil)."""
        return {
            "id": c.id,
            "object": "coupon",
            "amount_off": c.amount_off,
            "created": c.created,
            "currency": c.currency,
            "duration": c.duration,
            "duration_in_months": c.duration_in_months,
            "livemode": False,
            "max_redemptions": None,
            "metadata": {},
            "name": c.name,
            "percent_off": c.percent_off,
            "redeem_by": None,
            "times_redeemed": 1,
            "valid": True,
        }

    def tax_id(self, t: TaxId) -> JSON:
        """Customer tax id object (unchanged by basil)."""
        return {
            "id": t.id,
            "object": "tax_id",
            "country": t.country,
            "created": t.created,
            "customer": t.customer_id,
            "livemode": False,
            "type": t.type,
            "value": t.value,
            "verification": {"status": "pending", "verified_address": None, "verified_name": None},
        }

    def discount(self, d: Discount) -> JSON:
        """Discount object: coupon embedded (legacy, basil) or referenced by id through
        ``source`` (clover on: the coupon is no longer auto-expanded, in events too)."""
        b = self.BASIL
        c = self.CLOVER
        return _pack(
            {
                "id": d.id,
                "object": "discount",
                "checkout_session": None,
                "coupon": OMIT if c else self.coupon(d.coupon),
                "customer": d.customer_id,
                "customer_account": None if self.CLOVER else OMIT,
                "end": d.end,
                "invoice": None,
                "invoice_item": None,
                "promotion_code": None,
                "source": {"coupon": d.coupon.id, "type": "coupon"} if c else OMIT,
                "start": d.start,
                "subscription": d.subscription_id,
                "subscription_item": None if b else OMIT,
            }
        )

    def customer(self, c: Customer) -> JSON:
        """Customer object."""
        settings: JSON = {
            "custom_fields": None,
            "default_payment_method": c.default_pm.id if c.default_pm else None,
            "footer": None,
        }
        if self.BASIL:
            settings["rendering_options"] = None
        return {
            "id": c.id,
            "object": "customer",
            "address": rc.address(c.address) if c.address else None,
            "balance": c.balance,
            "created": c.created,
            "currency": c.currency if c.currency_set else None,
            "default_source": None,
            "delinquent": False,
            "description": None,
            "discount": None,
            "email": c.email,
            "invoice_prefix": c.invoice_prefix,
            "invoice_settings": settings,
            "livemode": False,
            "metadata": {"tenant_id": c.tenant_id},
            "name": c.name,
            "next_invoice_sequence": c.next_invoice_sequence,
            "phone": None,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }

    def payment_method(self, pm: PaymentMethod, c: Customer | None) -> JSON:
        """Card payment method."""
        b = self.BASIL
        card = _pack(
            {
                "brand": pm.brand,
                "checks": rc.card_checks("pass"),
                "country": "US",
                "display_brand": pm.brand if b else OMIT,
                "exp_month": pm.exp_month,
                "exp_year": pm.exp_year,
                "fingerprint": pm.fingerprint,
                "funding": "credit",
                "generated_from": None,
                "last4": pm.last4,
                "networks": {"available": [pm.brand], "preferred": None},
                "regulated_status": "unregulated" if b else OMIT,
                "three_d_secure_usage": {"supported": True},
                "wallet": None,
            }
        )
        return _pack(
            {
                "id": pm.id,
                "object": "payment_method",
                "allow_redisplay": "unspecified" if b else OMIT,
                "billing_details": rc.billing_details(c, b),
                "card": card,
                "created": pm.created,
                "customer": pm.customer_id,
                "customer_account": None if self.CLOVER else OMIT,
                "livemode": False,
                "metadata": {},
                "type": "card",
            }
        )

    def _item(self, s: Subscription) -> JSON:
        b = self.BASIL
        return _pack(
            {
                "id": s.item_id,
                "object": "subscription_item",
                "billed_until": None if self.DAHLIA else OMIT,
                "billing_thresholds": None,
                "created": s.item_created,
                "current_period_end": s.period_end if b else OMIT,
                "current_period_start": s.period_start if b else OMIT,
                "discounts": [] if b else OMIT,
                "metadata": {},
                "plan": rc.plan(s.price, b),
                "price": rc.price(s.price, b),
                "quantity": s.quantity,
                "subscription": s.id,
                "tax_rates": [],
            }
        )

    def subscription(self, s: Subscription) -> JSON:
        """Subscription object (periods on the subscription (legacy) or on its items (basil))."""
        b = self.BASIL
        payment_settings: JSON = {"payment_method_options": None, "payment_method_types": None}
        if b:
            payment_settings["save_default_payment_method"] = "off"
        return _pack(
            {
                "id": s.id,
                "object": "subscription",
                "application": None if b else OMIT,
                "application_fee_percent": None,
                "automatic_tax": self._automatic_tax(),
                "billing_cycle_anchor": s.billing_cycle_anchor,
                "billing_cycle_anchor_config": None if b else OMIT,
                "billing_mode": self._billing_mode() if b else OMIT,
                "billing_schedules": [] if self.DAHLIA else OMIT,
                "billing_thresholds": None,
                "cancel_at": s.cancel_at,
                "cancel_at_period_end": s.cancel_at_period_end,
                "canceled_at": s.canceled_at,
                "cancellation_details": {
                    "comment": None,
                    "feedback": s.cancel_feedback,
                    "reason": s.cancel_reason,
                },
                "collection_method": "charge_automatically",
                "created": s.created,
                "currency": s.price.currency if b else OMIT,
                "current_period_end": OMIT if b else s.period_end,
                "current_period_start": OMIT if b else s.period_start,
                "customer": s.customer_id,
                "customer_account": None if self.CLOVER else OMIT,
                "days_until_due": None,
                "default_payment_method": s.default_pm_id,
                "default_source": None,
                "default_tax_rates": [],
                "description": None if b else OMIT,
                "discount": (OMIT if b else (self.discount(s.discount) if s.discount else None)),
                "discounts": ([s.discount.id] if s.discount else []) if b else OMIT,
                "ended_at": s.ended_at,
                "invoice_settings": (
                    {
                        "account_tax_ids": None,
                        "custom_fields": None,
                        "description": None,
                        "footer": None,
                        "issuer": _ISSUER_SELF,
                    }
                    if b
                    else OMIT
                ),
                "items": rc.embedded_list(
                    [self._item(s)], f"/v1/subscription_items?subscription={s.id}"
                ),
                "latest_invoice": s.latest_invoice_id,
                "livemode": False,
                "managed_payments": {"enabled": False} if b else OMIT,
                "metadata": {},
                "next_pending_invoice_item_invoice": None,
                "on_behalf_of": None if b else OMIT,
                "pause_collection": (
                    {"behavior": s.pause_behavior, "resumes_at": None} if s.pause_behavior else None
                ),
                "payment_settings": payment_settings,
                "pending_invoice_item_interval": None,
                "pending_setup_intent": None,
                "pending_update": None,
                "plan": OMIT if b else rc.plan(s.price, b),
                "quantity": OMIT if b else s.quantity,
                "schedule": s.schedule_id,
                "start_date": s.start_date,
                "status": s.status,
                "test_clock": None,
                "transfer_data": None,
                "trial_end": s.trial_end,
                "trial_settings": (
                    {"end_behavior": {"missing_payment_method": "pause"}} if b else OMIT
                ),
                "trial_start": s.trial_start,
            }
        )

    @staticmethod
    def _line_parent(inv: Invoice, line: Line) -> JSON:
        item_details = None
        sub_details = None
        if line.invoice_item:
            item_details = {
                "invoice_item": line.invoice_item,
                "proration": line.proration,
                "proration_details": {"credited_items": None},
                "subscription": inv.subscription_id,
            }
        else:
            sub_details = {
                "invoice_item": None,
                "proration": line.proration,
                "proration_details": {"credited_items": None},
                "subscription": inv.subscription_id,
                "subscription_item": line.subscription_item,
            }
        return {
            "invoice_item_details": item_details,
            "subscription_item_details": sub_details,
            "type": ("invoice_item_details" if item_details else "subscription_item_details"),
        }

    def _line(self, inv: Invoice, line: Line) -> JSON:
        b = self.BASIL
        disc = inv.discount
        return _pack(
            {
                "id": line.id,
                "object": "line_item",
                "amount": line.amount,
                "currency": inv.currency,
                "description": line.description,
                "discount_amounts": (
                    [{"amount": line.discount_amount, "discount": disc.id}] if disc else []
                ),
                "discountable": not line.proration,
                "discounts": [],
                "invoice": inv.id if b else OMIT,
                "invoice_item": OMIT if b else line.invoice_item,
                "livemode": False,
                "metadata": {},
                "parent": self._line_parent(inv, line) if b else OMIT,
                "period": {"end": line.period_end, "start": line.period_start},
                "plan": OMIT if b else rc.plan(line.price, b),
                "pretax_credit_amounts": [] if b else OMIT,
                "price": OMIT if b else rc.price(line.price, b),
                "pricing": (
                    {
                        "price_details": {
                            "price": line.price.id,
                            "product": line.price.product.id,
                        },
                        "type": "price_details",
                        "unit_amount_decimal": str(line.price.unit_amount),
                    }
                    if b
                    else OMIT
                ),
                "proration": OMIT if b else line.proration,
                "proration_details": OMIT if b else {"credited_items": None},
                "quantity": line.quantity,
                "quantity_decimal": str(line.quantity) if b else OMIT,
                "subscription": None if b else inv.subscription_id,
                "subscription_item": OMIT if b else line.subscription_item,
                "subtotal": line.amount if b else OMIT,
                "tax_amounts": OMIT if b else [],
                "tax_rates": OMIT if b else [],
                "taxes": [] if b else OMIT,
                "type": OMIT if b else ("invoiceitem" if line.invoice_item else "subscription"),
            }
        )

    def invoice(self, inv: Invoice, c: Customer, account_name: str) -> JSON:
        """Invoice object (legacy: ``charge``/``payment_intent``/``paid`` on the invoice;
        basil: ``parent.subscription_details`` and no charge/payment_intent fields)."""
        b = self.BASIL
        L = not b
        total = inv.total
        disc = inv.discount
        done = inv.status in ("paid", "void", "uncollectible")
        automatic_tax: JSON = (
            {
                "disabled_reason": None,
                "enabled": False,
                "liability": None,
                "provider": None,
                "status": None,
            }
            if b
            else {"enabled": False, "status": None}
        )
        payment_settings: JSON = {"payment_method_options": None, "payment_method_types": None}
        if b:
            payment_settings = {"default_mandate": None, **payment_settings}
        ch = inv.charge
        return _pack(
            {
                "id": inv.id,
                "object": "invoice",
                "account_country": "US",
                "account_name": account_name,
                "account_tax_ids": None,
                "amount_due": total,
                "amount_overpaid": 0 if b else OMIT,
                "amount_paid": inv.amount_paid,
                "amount_remaining": 0 if done else total - inv.amount_paid,
                "amount_shipping": 0 if b else OMIT,
                "application": None if b else OMIT,
                "application_fee_amount": None if L else OMIT,
                "attempt_count": inv.attempt_count,
                "attempted": inv.attempt_count > 0,
                "auto_advance": inv.auto_advance,
                "automatic_tax": automatic_tax,
                "automatically_finalizes_at": (
                    (None if inv.finalized_at else inv.created + 3600) if b else OMIT
                ),
                "billing_reason": inv.billing_reason,
                "charge": (ch.id if ch else None) if L else OMIT,
                "collection_method": "charge_automatically",
                "created": inv.created,
                "currency": inv.currency,
                "custom_fields": None,
                "customer": inv.customer_id,
                "customer_account": None if self.CLOVER else OMIT,
                "customer_address": rc.address(c.address) if c.address else None,
                "customer_email": c.email,
                "customer_name": c.name,
                "customer_phone": None,
                "customer_shipping": None,
                "customer_tax_exempt": "none",
                "customer_tax_ids": [],
                "default_payment_method": None,
                "default_source": None,
                "default_tax_rates": [],
                "description": None,
                "discount": (self.discount(disc) if disc else None) if L else OMIT,
                "discounts": [disc.id] if disc else [],
                "due_date": None,
                "effective_at": inv.finalized_at if b else OMIT,
                "ending_balance": 0 if inv.finalized_at else None,
                "footer": None,
                "from_invoice": None if b else OMIT,
                "hosted_invoice_url": (
                    f"https://invoice.stripe.com/i/acct_sim/test_{inv.id}"
                    if inv.finalized_at
                    else None
                ),
                "invoice_pdf": (
                    f"https://pay.stripe.com/invoice/acct_sim/test_{inv.id}/pdf"
                    if inv.finalized_at
                    else None
                ),
                "issuer": _ISSUER_SELF if b else OMIT,
                "last_finalization_error": None,
                "latest_revision": None if b else OMIT,
                "lines": rc.embedded_list(
                    [self._line(inv, ln) for ln in inv.lines], f"/v1/invoices/{inv.id}/lines"
                ),
                "livemode": False,
                "metadata": {},
                "next_payment_attempt": inv.next_payment_attempt,
                "number": inv.number if inv.finalized_at else None,
                "on_behalf_of": None,
                "paid": inv.status == "paid" if L else OMIT,
                "paid_out_of_band": False if L else OMIT,
                "parent": (
                    {
                        "quote_details": None,
                        "subscription_details": (
                            {"metadata": {}, "subscription": inv.subscription_id}
                            if inv.subscription_id
                            else None
                        ),
                        "type": "subscription_details",
                    }
                    if b
                    else OMIT
                ),
                "payment_intent": (
                    (inv.payment_intent.id if inv.payment_intent else None) if L else OMIT
                ),
                "payment_settings": payment_settings,
                "period_end": inv.period_end,
                "period_start": inv.period_start,
                "post_payment_credit_notes_amount": inv.post_payment_credit_notes_amount,
                "pre_payment_credit_notes_amount": 0,
                "quote": None if L else OMIT,
                "receipt_number": None,
                "rendering": (
                    {
                        "amount_tax_display": None,
                        "pdf": {"page_size": "auto"},
                        "template": None,
                        "template_version": None,
                    }
                    if b
                    else OMIT
                ),
                "shipping_cost": None if b else OMIT,
                "shipping_details": None if b else OMIT,
                "starting_balance": 0,
                "statement_descriptor": None,
                "status": inv.status,
                "status_transitions": {
                    "finalized_at": inv.finalized_at,
                    "marked_uncollectible_at": inv.marked_uncollectible_at,
                    "paid_at": inv.paid_at,
                    "voided_at": inv.voided_at,
                },
                "subscription": None if b else inv.subscription_id,
                "subtotal": inv.subtotal,
                "subtotal_excluding_tax": inv.subtotal if b else OMIT,
                "tax": None if L else OMIT,
                "test_clock": None,
                "total": total,
                "total_discount_amounts": (
                    [{"amount": inv.discount_amount, "discount": disc.id}] if disc else []
                ),
                "total_excluding_tax": total if b else OMIT,
                "total_pretax_credit_amounts": [] if b else OMIT,
                "total_tax_amounts": [] if L else OMIT,
                "total_taxes": [] if b else OMIT,
                "transfer_data": None if L else OMIT,
                "webhooks_delivered_at": inv.finalized_at,
            }
        )

    def refund(self, r: Refund) -> JSON:
        """Refund object."""
        b = self.BASIL
        return _pack(
            {
                "id": r.id,
                "object": "refund",
                "amount": r.amount,
                "balance_transaction": r.balance_transaction,
                "charge": r.charge_id,
                "created": r.created,
                "currency": r.currency,
                "customer": r.customer_id if b else OMIT,
                "customer_account": None if self.CLOVER else OMIT,
                "destination_details": (
                    {
                        "card": {
                            "reference": None,
                            "reference_status": "pending",
                            "reference_type": "acquirer_reference_number",
                            "type": "refund",
                        },
                        "type": "card",
                    }
                    if b
                    else OMIT
                ),
                "metadata": {},
                "payment_intent": r.payment_intent_id,
                "payment_method": None if b else OMIT,
                "reason": r.reason,
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": "succeeded",
                "transfer_reversal": None,
            }
        )

    @staticmethod
    def _card_source(ch: Charge, c: Customer) -> JSON:
        pm = ch.pm
        return {
            "id": pm.id,
            "object": "card",
            "address_city": None,
            "address_country": None,
            "address_line1": None,
            "address_line1_check": None,
            "address_line2": None,
            "address_state": None,
            "address_zip": None,
            "address_zip_check": None,
            "brand": pm.brand.capitalize(),
            "country": "US",
            "customer": c.id,
            "cvc_check": "pass",
            "dynamic_last4": None,
            "exp_month": pm.exp_month,
            "exp_year": pm.exp_year,
            "fingerprint": pm.fingerprint,
            "funding": "credit",
            "last4": pm.last4,
            "metadata": {},
            "name": c.name,
            "tokenization_method": None,
        }

    def charge(self, ch: Charge, c: Customer) -> JSON:
        """Charge object (legacy: card ``source`` embedded, as 2020-era card integrations
        received it; basil: no ``invoice`` field)."""
        b = self.BASIL
        L = not b
        ok = ch.status == "succeeded"
        if b:
            receipt_url = f"https://pay.stripe.com/receipts/payment/{ch.id}"
        else:
            receipt_url = f"https://pay.stripe.com/receipts/acct_sim/{ch.id}/rcpt"
        return _pack(
            {
                "id": ch.id,
                "object": "charge",
                "amount": ch.amount,
                "amount_captured": ch.amount if ok else 0,
                "amount_refunded": ch.amount_refunded,
                "application": None,
                "application_fee": None,
                "application_fee_amount": None,
                "balance_transaction": ch.balance_transaction,
                "billing_details": rc.billing_details(c, b),
                "calculated_statement_descriptor": "SIMBILLING",
                "captured": ok,
                "created": ch.created,
                "currency": ch.currency,
                "customer": ch.customer_id,
                "description": "Subscription update" if b or ch.invoice_id else None,
                "destination": None if L else OMIT,
                "dispute": None if L else OMIT,
                "disputed": False,
                "failure_balance_transaction": None if b else OMIT,
                "failure_code": None if ok else "card_declined",
                "failure_message": None if ok else "Your card was declined.",
                "fraud_details": {},
                "invoice": ch.invoice_id if L else OMIT,
                "livemode": False,
                "metadata": {},
                "on_behalf_of": None,
                "order": None if L else OMIT,
                "outcome": rc.outcome(ch, b),
                "paid": ok,
                "payment_intent": ch.payment_intent_id,
                "payment_method": ch.pm.id,
                "payment_method_details": rc.card_pm_details(ch.pm, b),
                "receipt_email": None,
                "receipt_number": None,
                "receipt_url": receipt_url if ok else None,
                "refunded": ok and ch.amount_refunded >= ch.amount,
                "refunds": rc.embedded_list(
                    [self.refund(r) for r in reversed(ch.refunds)],
                    f"/v1/charges/{ch.id}/refunds",
                ),
                "review": None,
                "shipping": None if b else rc.shipping(c.name, c.address),
                "source": None if b else self._card_source(ch, c),
                "source_transfer": None,
                "statement_descriptor": None,
                "statement_descriptor_suffix": None,
                "status": ch.status,
                "transfer_data": None,
                "transfer_group": None,
            }
        )

    def _last_error(self, ch: Charge, c: Customer) -> JSON:
        return {
            "charge": ch.id,
            "code": "card_declined",
            "decline_code": "generic_decline",
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            "message": "Your card was declined.",
            "payment_method": self.payment_method(ch.pm, c),
            "type": "card_error",
        }

    def payment_intent(self, pi: PaymentIntent, c: Customer) -> JSON:
        """Payment intent (legacy: embedded ``charges`` list; basil: ``latest_charge``)."""
        b = self.BASIL
        L = not b
        ok = pi.status == "succeeded"
        return _pack(
            {
                "id": pi.id,
                "object": "payment_intent",
                "amount": pi.amount,
                "amount_capturable": 0,
                "amount_details": {"tip": {}} if b else OMIT,
                "amount_received": pi.amount if ok else 0,
                "application": None,
                "application_fee_amount": None,
                "automatic_payment_methods": None,
                "canceled_at": None,
                "cancellation_reason": None,
                "capture_method": "automatic",
                "charges": (
                    rc.embedded_list(
                        [self.charge(ch, c) for ch in reversed(pi.charges)],
                        f"/v1/charges?payment_intent={pi.id}",
                    )
                    if L
                    else OMIT
                ),
                "client_secret": f"{pi.id}_secret_sim",
                "confirmation_method": "automatic",
                "created": pi.created,
                "currency": pi.currency,
                "customer": pi.customer_id,
                "customer_account": None if self.CLOVER else OMIT,
                "description": "Subscription update",
                "excluded_payment_method_types": None if b else OMIT,
                "invoice": pi.invoice_id if L else OMIT,
                "last_payment_error": (
                    self._last_error(pi.last_error, c) if pi.last_error else None
                ),
                "latest_charge": (pi.charges[-1].id if pi.charges else None) if b else OMIT,
                "livemode": False,
                "managed_payments": {"enabled": False} if b else OMIT,
                "metadata": {},
                "next_action": None,
                "on_behalf_of": None,
                "payment_method": pi.pm.id if pi.pm and ok else None,
                "payment_method_configuration_details": None if b else OMIT,
                "payment_method_options": {
                    "card": {
                        "installments": None,
                        "mandate_options": None,
                        "network": None,
                        "request_three_d_secure": "automatic",
                    }
                },
                "payment_method_types": ["card"],
                "processing": None,
                "receipt_email": None,
                "review": None,
                "setup_future_usage": None,
                "shipping": None if b else rc.shipping(c.name, c.address),
                "source": None,
                "statement_descriptor": None,
                "statement_descriptor_suffix": None,
                "status": pi.status,
                "transfer_data": None,
                "transfer_group": None,
            }
        )

    def _phase(self, s: Schedule, i: int) -> JSON:
        b = self.BASIL
        ph = s.phases[i]
        item = _pack(
            {
                "billing_thresholds": None,
                "discounts": [] if b else OMIT,
                "metadata": {} if b else OMIT,
                "plan": ph.price.id,
                "price": ph.price.id,
                "quantity": ph.quantity,
                "tax_rates": [],
            }
        )
        return _pack(
            {
                "add_invoice_items": [],
                "application_fee_percent": None,
                "billing_cycle_anchor": None,
                "billing_thresholds": None,
                "collection_method": None,
                "coupon": OMIT if b else None,
                "currency": ph.price.currency if b else OMIT,
                "default_payment_method": None,
                "default_tax_rates": [],
                "description": None if b else OMIT,
                "discounts": [] if b else OMIT,
                "end_date": ph.end,
                "invoice_settings": None,
                "items": [item],
                "metadata": {} if b else OMIT,
                "on_behalf_of": None if b else OMIT,
                "proration_behavior": "create_prorations",
                "start_date": ph.start,
                "transfer_data": None,
                "trial_end": None,
            }
        )

    def schedule(self, s: Schedule, now: int) -> JSON:
        """Subscription schedule object."""
        b = self.BASIL
        L = not b
        invoice_settings: JSON = (
            {
                "account_tax_ids": None,
                "custom_fields": None,
                "days_until_due": None,
                "description": None,
                "footer": None,
                "issuer": _ISSUER_SELF,
            }
            if b
            else {"days_until_due": None}
        )
        return _pack(
            {
                "id": s.id,
                "object": "subscription_schedule",
                "application": None if b else OMIT,
                "billing_mode": self._billing_mode() if b else OMIT,
                "canceled_at": s.canceled_at,
                "completed_at": s.completed_at,
                "created": s.created,
                "current_phase": current_phase(s, now),
                "customer": s.customer_id,
                "customer_account": None if self.CLOVER else OMIT,
                "default_settings": _pack(
                    {
                        "application_fee_percent": None,
                        "automatic_tax": self._automatic_tax(),
                        "billing_cycle_anchor": "automatic",
                        "billing_thresholds": None,
                        "collection_method": "charge_automatically",
                        "default_payment_method": None,
                        "default_source": None if L else OMIT,
                        "description": None if b else OMIT,
                        "invoice_settings": invoice_settings,
                        "on_behalf_of": None if b else OMIT,
                        "transfer_data": None,
                    }
                ),
                "end_behavior": "release",
                "livemode": False,
                "metadata": {},
                "phases": [self._phase(s, i) for i in range(len(s.phases))],
                "released_at": s.released_at,
                "released_subscription": s.released_subscription,
                "renewal_interval": None if L else OMIT,
                "status": s.status,
                "subscription": s.subscription_id if s.status == "active" else None,
                "test_clock": None,
            }
        )

    def credit_note(self, cn: CreditNote) -> JSON:
        """Credit note object."""
        b = self.BASIL
        L = not b
        line = _pack(
            {
                "id": cn.line_id,
                "object": "credit_note_line_item",
                "amount": cn.amount,
                "amount_excluding_tax": cn.amount if L else OMIT,
                "description": "Service credit",
                "discount_amount": 0,
                "discount_amounts": [],
                "invoice_line_item": None,
                "livemode": False,
                "metadata": {} if b else OMIT,
                "pretax_credit_amounts": [] if b else OMIT,
                "quantity": 1,
                "tax_amounts": [] if L else OMIT,
                "tax_rates": [],
                "taxes": [] if b else OMIT,
                "type": "custom_line_item",
                "unit_amount": cn.amount,
                "unit_amount_decimal": str(cn.amount),
                "unit_amount_excluding_tax": str(cn.amount) if L else OMIT,
            }
        )
        c = self.CLOVER
        refunds = (
            [
                _pack(
                    {
                        "amount_refunded": cn.amount,
                        "payment_record_refund": None if c else OMIT,
                        "refund": cn.refund_id,
                        "type": "refund" if c else OMIT,
                    }
                )
            ]
            if cn.refund_id
            else []
        )
        return _pack(
            {
                "id": cn.id,
                "object": "credit_note",
                "amount": cn.amount,
                "amount_shipping": 0,
                "created": cn.created,
                "currency": cn.currency,
                "customer": cn.customer_id,
                "customer_account": None if self.CLOVER else OMIT,
                "customer_balance_transaction": (
                    cn.balance_transaction if not cn.refund_id else None
                ),
                "discount_amount": 0,
                "discount_amounts": [],
                "effective_at": cn.created if b else OMIT,
                "invoice": cn.invoice.id,
                "lines": rc.embedded_list([line], f"/v1/credit_notes/{cn.id}/lines"),
                "livemode": False,
                "memo": "Service credit",
                "metadata": {},
                "number": cn.number,
                "out_of_band_amount": None,
                "pdf": f"https://pay.stripe.com/credit_notes/{cn.id}/pdf",
                "post_payment_amount": cn.amount if b else OMIT,
                "pre_payment_amount": 0 if b else OMIT,
                "pretax_credit_amounts": [] if b else OMIT,
                "reason": cn.reason,
                "refund": cn.refund_id if L else OMIT,
                "refunds": refunds if b else OMIT,
                "shipping_cost": None,
                "status": "issued",
                "subtotal": cn.amount,
                "subtotal_excluding_tax": cn.amount,
                "tax_amounts": [] if L else OMIT,
                "total": cn.amount,
                "total_excluding_tax": cn.amount,
                "total_taxes": [] if b else OMIT,
                "type": "post_payment",
                "voided_at": None,
            }
        )
