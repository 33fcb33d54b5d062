"""Object shapes of the ``2025-03-31.basil`` API version family.

Modelled on Stripe's own current example objects (``shared/fixtures/stripe_objects``):
``current_period_start/end`` on subscription items, ``invoice.parent.subscription_details``,
line ``parent``/``pricing``, ``discounts`` lists instead of ``discount``, no ``invoice.charge``
(payments are ``invoice_payment`` objects) and no ``invoice`` on charges/payment intents.
"""

from __future__ import annotations

from . import render_common as rc
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
from .render_legacy import coupon as _legacy_coupon
from .render_legacy import current_phase
from .render_legacy import tax_id as _legacy_tax_id

BASIL = True
_ISSUER_SELF: JSON = {"type": "self"}


def coupon(c: Coupon) -> JSON:
    """Coupon object (unchanged by basil)."""
    return _legacy_coupon(c)


def tax_id(t: TaxId) -> JSON:
    """Customer tax id object (unchanged by basil)."""
    return _legacy_tax_id(t)


def discount(d: Discount) -> JSON:
    """Discount object: the coupon is referenced through ``source`` (basil)."""
    return {
        "id": d.id,
        "object": "discount",
        "checkout_session": None,
        "customer": d.customer_id,
        "customer_account": None,
        "end": d.end,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": None,
        "source": {"coupon": d.coupon.id, "type": "coupon"},
        "start": d.start,
        "subscription": d.subscription_id,
        "subscription_item": None,
    }


def customer(c: Customer) -> JSON:
    """Customer object."""
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
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": c.default_pm.id if c.default_pm else None,
            "footer": None,
            "rendering_options": None,
        },
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


def payment_method(pm: PaymentMethod, c: Customer | None) -> JSON:
    """Card payment method."""
    return {
        "id": pm.id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": rc.billing_details(c, True),
        "card": {
            "brand": pm.brand,
            "checks": rc.card_checks("pass"),
            "country": "US",
            "display_brand": pm.brand,
            "exp_month": pm.exp_month,
            "exp_year": pm.exp_year,
            "fingerprint": pm.fingerprint,
            "funding": "credit",
            "generated_from": None,
            "last4": pm.last4,
            "networks": {"available": [pm.brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": pm.created,
        "customer": pm.customer_id,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def _item(s: Subscription) -> JSON:
    return {
        "id": s.item_id,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": s.item_created,
        "current_period_end": s.period_end,
        "current_period_start": s.period_start,
        "discounts": [],
        "metadata": {},
        "plan": rc.plan(s.price, BASIL),
        "price": rc.price(s.price, BASIL),
        "quantity": s.quantity,
        "subscription": s.id,
        "tax_rates": [],
    }


def _payment_settings() -> JSON:
    return {
        "payment_method_options": None,
        "payment_method_types": None,
        "save_default_payment_method": "off",
    }


def subscription(s: Subscription) -> JSON:
    """Subscription object (periods live on the items)."""
    return {
        "id": s.id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": s.billing_cycle_anchor,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "classic"},
        "billing_schedules": [],
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
        "currency": s.price.currency,
        "customer": s.customer_id,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": s.default_pm_id,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [s.discount.id] if s.discount else [],
        "ended_at": s.ended_at,
        "invoice_settings": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": _ISSUER_SELF,
        },
        "items": rc.embedded_list([_item(s)], f"/v1/subscription_items?subscription={s.id}"),
        "latest_invoice": s.latest_invoice_id,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": (
            {"behavior": s.pause_behavior, "resumes_at": None} if s.pause_behavior else None
        ),
        "payment_settings": _payment_settings(),
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": s.schedule_id,
        "start_date": s.start_date,
        "status": s.status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": s.trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}},
        "trial_start": s.trial_start,
    }


def _line(inv: Invoice, line: Line) -> JSON:
    disc = inv.discount
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
        "invoice": inv.id,
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": item_details,
            "subscription_item_details": sub_details,
            "type": ("invoice_item_details" if item_details else "subscription_item_details"),
        },
        "period": {"end": line.period_end, "start": line.period_start},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": line.price.id, "product": line.price.product.id},
            "type": "price_details",
            "unit_amount_decimal": str(line.price.unit_amount),
        },
        "quantity": line.quantity,
        "quantity_decimal": str(line.quantity),
        "subscription": None,
        "subtotal": line.amount,
        "taxes": [],
    }


def invoice(inv: Invoice, c: Customer, account_name: str) -> JSON:
    """Invoice object (``parent.subscription_details``; no charge/payment_intent fields)."""
    total = inv.total
    disc = inv.discount
    done = inv.status in ("paid", "void", "uncollectible")
    return {
        "id": inv.id,
        "object": "invoice",
        "account_country": "US",
        "account_name": account_name,
        "account_tax_ids": None,
        "amount_due": total,
        "amount_overpaid": 0,
        "amount_paid": inv.amount_paid,
        "amount_remaining": 0 if done else total - inv.amount_paid,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": inv.attempt_count,
        "attempted": inv.attempt_count > 0,
        "auto_advance": inv.auto_advance,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None if inv.finalized_at else inv.created + 3600,
        "billing_reason": inv.billing_reason,
        "collection_method": "charge_automatically",
        "created": inv.created,
        "currency": inv.currency,
        "custom_fields": None,
        "customer": inv.customer_id,
        "customer_account": None,
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
        "discounts": [disc.id] if disc else [],
        "due_date": None,
        "effective_at": inv.finalized_at,
        "ending_balance": 0 if inv.finalized_at else None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": (
            f"https://invoice.stripe.com/i/acct_sim/test_{inv.id}" if inv.finalized_at else None
        ),
        "invoice_pdf": (
            f"https://pay.stripe.com/invoice/acct_sim/test_{inv.id}/pdf"
            if inv.finalized_at
            else None
        ),
        "issuer": _ISSUER_SELF,
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": rc.embedded_list(
            [_line(inv, ln) for ln in inv.lines], f"/v1/invoices/{inv.id}/lines"
        ),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": inv.next_payment_attempt,
        "number": inv.number if inv.finalized_at else None,
        "on_behalf_of": None,
        "parent": {
            "quote_details": None,
            "subscription_details": (
                {"metadata": {}, "subscription": inv.subscription_id}
                if inv.subscription_id
                else None
            ),
            "type": "subscription_details",
        },
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": inv.period_end,
        "period_start": inv.period_start,
        "post_payment_credit_notes_amount": inv.post_payment_credit_notes_amount,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": {
            "amount_tax_display": None,
            "pdf": {"page_size": "auto"},
            "template": None,
            "template_version": None,
        },
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": inv.status,
        "status_transitions": {
            "finalized_at": inv.finalized_at,
            "marked_uncollectible_at": inv.marked_uncollectible_at,
            "paid_at": inv.paid_at,
            "voided_at": inv.voided_at,
        },
        "subscription": None,
        "subtotal": inv.subtotal,
        "subtotal_excluding_tax": inv.subtotal,
        "test_clock": None,
        "total": total,
        "total_discount_amounts": (
            [{"amount": inv.discount_amount, "discount": disc.id}] if disc else []
        ),
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": inv.finalized_at,
    }


def invoice_payment(inv: Invoice) -> JSON:
    """The ``invoice_payment`` linking a paid invoice to its payment intent (basil)."""
    pi = inv.payment_intent
    paid = inv.status == "paid"
    return {
        "id": inv.payment_id,
        "object": "invoice_payment",
        "amount_paid": inv.amount_paid if paid else None,
        "amount_requested": inv.total,
        "created": pi.created if pi else inv.created,
        "currency": inv.currency,
        "invoice": inv.id,
        "is_default": True,
        "livemode": False,
        "payment": {"payment_intent": pi.id if pi else None, "type": "payment_intent"},
        "status": "paid" if paid else "open",
        "status_transitions": {"canceled_at": None, "paid_at": inv.paid_at},
    }


def refund(r: Refund) -> JSON:
    """Refund object."""
    return {
        "id": r.id,
        "object": "refund",
        "amount": r.amount,
        "balance_transaction": r.balance_transaction,
        "charge": r.charge_id,
        "created": r.created,
        "currency": r.currency,
        "customer": r.customer_id,
        "customer_account": None,
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "metadata": {},
        "payment_intent": r.payment_intent_id,
        "payment_method": None,
        "reason": r.reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def charge(ch: Charge, c: Customer) -> JSON:
    """Charge object (no ``invoice`` field since basil)."""
    ok = ch.status == "succeeded"
    return {
        "id": ch.id,
        "object": "charge",
        "amount": ch.amount,
        "amount_captured": ch.amount if ok else 0,
        "amount_refunded": ch.amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": ch.balance_transaction,
        "billing_details": rc.billing_details(c, True),
        "calculated_statement_descriptor": "SIMBILLING",
        "captured": ok,
        "created": ch.created,
        "currency": ch.currency,
        "customer": ch.customer_id,
        "description": "Subscription update",
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None if ok else "card_declined",
        "failure_message": None if ok else "Your card was declined.",
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": rc.outcome(ch, BASIL),
        "paid": ok,
        "payment_intent": ch.payment_intent_id,
        "payment_method": ch.pm.id,
        "payment_method_details": rc.card_pm_details(ch.pm, BASIL),
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{ch.id}" if ok else None,
        "refunded": ok and ch.amount_refunded >= ch.amount,
        "refunds": rc.embedded_list(
            [refund(r) for r in reversed(ch.refunds)], f"/v1/charges/{ch.id}/refunds"
        ),
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": ch.status,
        "transfer_data": None,
        "transfer_group": None,
    }


def payment_intent(pi: PaymentIntent, c: Customer) -> JSON:
    """Payment intent (``latest_charge`` instead of an embedded charges list)."""
    ok = pi.status == "succeeded"
    err = pi.last_error
    return {
        "id": pi.id,
        "object": "payment_intent",
        "amount": pi.amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": pi.amount if ok else 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pi.id}_secret_sim",
        "confirmation_method": "automatic",
        "created": pi.created,
        "currency": pi.currency,
        "customer": pi.customer_id,
        "customer_account": None,
        "description": "Subscription update",
        "excluded_payment_method_types": None,
        "last_payment_error": (
            {
                "charge": err.id,
                "code": "card_declined",
                "decline_code": "generic_decline",
                "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                "message": "Your card was declined.",
                "payment_method": payment_method(err.pm, c),
                "type": "card_error",
            }
            if err
            else None
        ),
        "latest_charge": pi.charges[-1].id if pi.charges else None,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": pi.pm.id if pi.pm and ok else None,
        "payment_method_configuration_details": None,
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
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": pi.status,
        "transfer_data": None,
        "transfer_group": None,
    }


def _phase(s: Schedule, i: int) -> JSON:
    ph = s.phases[i]
    return {
        "add_invoice_items": [],
        "application_fee_percent": None,
        "billing_cycle_anchor": None,
        "billing_thresholds": None,
        "collection_method": None,
        "currency": ph.price.currency,
        "default_payment_method": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "end_date": ph.end,
        "invoice_settings": None,
        "items": [
            {
                "billing_thresholds": None,
                "discounts": [],
                "metadata": {},
                "plan": ph.price.id,
                "price": ph.price.id,
                "quantity": ph.quantity,
                "tax_rates": [],
            }
        ],
        "metadata": {},
        "on_behalf_of": None,
        "proration_behavior": "create_prorations",
        "start_date": ph.start,
        "transfer_data": None,
        "trial_end": None,
    }


def schedule(s: Schedule, now: int) -> JSON:
    """Subscription schedule object."""
    return {
        "id": s.id,
        "object": "subscription_schedule",
        "application": None,
        "billing_mode": {"flexible": None, "type": "classic"},
        "canceled_at": s.canceled_at,
        "completed_at": s.completed_at,
        "created": s.created,
        "current_phase": current_phase(s, now),
        "customer": s.customer_id,
        "customer_account": None,
        "default_settings": {
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": "automatic",
            "billing_thresholds": None,
            "collection_method": "charge_automatically",
            "default_payment_method": None,
            "description": None,
            "invoice_settings": {
                "account_tax_ids": None,
                "custom_fields": None,
                "days_until_due": None,
                "description": None,
                "footer": None,
                "issuer": _ISSUER_SELF,
            },
            "on_behalf_of": None,
            "transfer_data": None,
        },
        "end_behavior": "release",
        "livemode": False,
        "metadata": {},
        "phases": [_phase(s, i) for i in range(len(s.phases))],
        "released_at": s.released_at,
        "released_subscription": s.released_subscription,
        "status": s.status,
        "subscription": s.subscription_id if s.status == "active" else None,
        "test_clock": None,
    }


def credit_note(cn: CreditNote) -> JSON:
    """Credit note object."""
    return {
        "id": cn.id,
        "object": "credit_note",
        "amount": cn.amount,
        "amount_shipping": 0,
        "created": cn.created,
        "currency": cn.currency,
        "customer": cn.customer_id,
        "customer_account": None,
        "customer_balance_transaction": cn.balance_transaction if not cn.refund_id else None,
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": cn.created,
        "invoice": cn.invoice.id,
        "lines": rc.embedded_list(
            [
                {
                    "id": cn.line_id,
                    "object": "credit_note_line_item",
                    "amount": cn.amount,
                    "description": "Service credit",
                    "discount_amount": 0,
                    "discount_amounts": [],
                    "invoice_line_item": None,
                    "livemode": False,
                    "metadata": {},
                    "pretax_credit_amounts": [],
                    "quantity": 1,
                    "tax_rates": [],
                    "taxes": [],
                    "type": "custom_line_item",
                    "unit_amount": cn.amount,
                    "unit_amount_decimal": str(cn.amount),
                }
            ],
            f"/v1/credit_notes/{cn.id}/lines",
        ),
        "livemode": False,
        "memo": "Service credit",
        "metadata": {},
        "number": cn.number,
        "out_of_band_amount": None,
        "pdf": f"https://pay.stripe.com/credit_notes/{cn.id}/pdf",
        "post_payment_amount": cn.amount,
        "pre_payment_amount": 0,
        "pretax_credit_amounts": [],
        "reason": cn.reason,
        "refunds": (
            [
                {
                    "amount_refunded": cn.amount,
                    "payment_record_refund": None,
                    "refund": cn.refund_id,
                    "type": "refund",
                }
            ]
            if cn.refund_id
            else []
        ),
        "shipping_cost": None,
        "status": "issued",
        "subtotal": cn.amount,
        "subtotal_excluding_tax": cn.amount,
        "total": cn.amount,
        "total_excluding_tax": cn.amount,
        "total_taxes": [],
        "type": "post_payment",
        "voided_at": None,
    }
