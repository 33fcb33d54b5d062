"""Object shapes of the 2020-08-27 API version family.

Modelled on the real 2020-08-27 webhook payloads in ``shared/fixtures/stripe_events``: period
fields on the subscription, ``plan``/``quantity`` mirrored on the subscription, a singular
``discount``, and ``charge``/``payment_intent``/``subscription``/``paid`` on invoices.
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

BASIL = False


def coupon(c: Coupon) -> JSON:
    """Coupon object."""
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


def discount(d: Discount) -> JSON:
    """Discount object with the coupon embedded (pre-basil)."""
    return {
        "id": d.id,
        "object": "discount",
        "checkout_session": None,
        "coupon": coupon(d.coupon),
        "customer": d.customer_id,
        "end": d.end,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": None,
        "start": d.start,
        "subscription": d.subscription_id,
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
        "billing_details": rc.billing_details(c, False),
        "card": {
            "brand": pm.brand,
            "checks": rc.card_checks("pass"),
            "country": "US",
            "exp_month": pm.exp_month,
            "exp_year": pm.exp_year,
            "fingerprint": pm.fingerprint,
            "funding": "credit",
            "generated_from": None,
            "last4": pm.last4,
            "networks": {"available": [pm.brand], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": pm.created,
        "customer": pm.customer_id,
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
        "metadata": {},
        "plan": rc.plan(s.price, BASIL),
        "price": rc.price(s.price, BASIL),
        "quantity": s.quantity,
        "subscription": s.id,
        "tax_rates": [],
    }


def subscription(s: Subscription) -> JSON:
    """Subscription object (periods on the subscription itself)."""
    return {
        "id": s.id,
        "object": "subscription",
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False},
        "billing_cycle_anchor": s.billing_cycle_anchor,
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
        "current_period_end": s.period_end,
        "current_period_start": s.period_start,
        "customer": s.customer_id,
        "days_until_due": None,
        "default_payment_method": s.default_pm_id,
        "default_source": None,
        "default_tax_rates": [],
        "discount": discount(s.discount) if s.discount else None,
        "ended_at": s.ended_at,
        "items": rc.embedded_list([_item(s)], f"/v1/subscription_items?subscription={s.id}"),
        "latest_invoice": s.latest_invoice_id,
        "livemode": False,
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "pause_collection": (
            {"behavior": s.pause_behavior, "resumes_at": None} if s.pause_behavior else None
        ),
        "payment_settings": {"payment_method_options": None, "payment_method_types": None},
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "plan": rc.plan(s.price, BASIL),
        "quantity": s.quantity,
        "schedule": s.schedule_id,
        "start_date": s.start_date,
        "status": s.status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": s.trial_end,
        "trial_start": s.trial_start,
    }


def _line(inv: Invoice, line: Line) -> JSON:
    disc = inv.discount
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
        "invoice_item": line.invoice_item,
        "livemode": False,
        "metadata": {},
        "period": {"end": line.period_end, "start": line.period_start},
        "plan": rc.plan(line.price, BASIL),
        "price": rc.price(line.price, BASIL),
        "proration": line.proration,
        "proration_details": {"credited_items": None},
        "quantity": line.quantity,
        "subscription": inv.subscription_id,
        "subscription_item": line.subscription_item,
        "tax_amounts": [],
        "tax_rates": [],
        "type": "invoiceitem" if line.invoice_item else "subscription",
    }


def invoice(inv: Invoice, c: Customer, account_name: str) -> JSON:
    """Invoice object (``charge``/``payment_intent``/``paid`` on the invoice)."""
    ch = inv.charge
    total = inv.total
    paid = inv.status == "paid"
    disc = inv.discount
    done = inv.status in ("paid", "void", "uncollectible")
    return {
        "id": inv.id,
        "object": "invoice",
        "account_country": "US",
        "account_name": account_name,
        "account_tax_ids": None,
        "amount_due": total,
        "amount_paid": inv.amount_paid,
        "amount_remaining": 0 if done else total - inv.amount_paid,
        "application_fee_amount": None,
        "attempt_count": inv.attempt_count,
        "attempted": inv.attempt_count > 0,
        "auto_advance": inv.auto_advance,
        "automatic_tax": {"enabled": False, "status": None},
        "billing_reason": inv.billing_reason,
        "charge": ch.id if ch else None,
        "collection_method": "charge_automatically",
        "created": inv.created,
        "currency": inv.currency,
        "custom_fields": None,
        "customer": inv.customer_id,
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
        "discount": discount(disc) if disc else None,
        "discounts": [disc.id] if disc else [],
        "due_date": None,
        "ending_balance": 0 if inv.finalized_at else None,
        "footer": None,
        "hosted_invoice_url": (
            f"https://invoice.stripe.com/i/acct_sim/test_{inv.id}" if inv.finalized_at else None
        ),
        "invoice_pdf": (
            f"https://pay.stripe.com/invoice/acct_sim/test_{inv.id}/pdf"
            if inv.finalized_at
            else None
        ),
        "last_finalization_error": None,
        "lines": rc.embedded_list(
            [_line(inv, ln) for ln in inv.lines], f"/v1/invoices/{inv.id}/lines"
        ),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": inv.next_payment_attempt,
        "number": inv.number if inv.finalized_at else None,
        "on_behalf_of": None,
        "paid": paid,
        "paid_out_of_band": False,
        "payment_intent": inv.payment_intent.id if inv.payment_intent else None,
        "payment_settings": {"payment_method_options": None, "payment_method_types": None},
        "period_end": inv.period_end,
        "period_start": inv.period_start,
        "post_payment_credit_notes_amount": inv.post_payment_credit_notes_amount,
        "pre_payment_credit_notes_amount": 0,
        "quote": None,
        "receipt_number": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": inv.status,
        "status_transitions": {
            "finalized_at": inv.finalized_at,
            "marked_uncollectible_at": inv.marked_uncollectible_at,
            "paid_at": inv.paid_at,
            "voided_at": inv.voided_at,
        },
        "subscription": inv.subscription_id,
        "subtotal": inv.subtotal,
        "tax": None,
        "test_clock": None,
        "total": total,
        "total_discount_amounts": (
            [{"amount": inv.discount_amount, "discount": disc.id}] if disc else []
        ),
        "total_tax_amounts": [],
        "transfer_data": None,
        "webhooks_delivered_at": inv.finalized_at,
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
        "metadata": {},
        "payment_intent": r.payment_intent_id,
        "reason": r.reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


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


def charge(ch: Charge, c: Customer) -> JSON:
    """Charge object (card ``source`` embedded, as 2020-era card integrations received it)."""
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
        "billing_details": rc.billing_details(c, False),
        "calculated_statement_descriptor": "SIMBILLING",
        "captured": ok,
        "created": ch.created,
        "currency": ch.currency,
        "customer": ch.customer_id,
        "description": "Subscription update" if ch.invoice_id else None,
        "destination": None,
        "dispute": None,
        "disputed": False,
        "failure_code": None if ok else "card_declined",
        "failure_message": None if ok else "Your card was declined.",
        "fraud_details": {},
        "invoice": ch.invoice_id,
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "order": None,
        "outcome": rc.outcome(ch, BASIL),
        "paid": ok,
        "payment_intent": ch.payment_intent_id,
        "payment_method": ch.pm.id,
        "payment_method_details": rc.card_pm_details(ch.pm, BASIL),
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/acct_sim/{ch.id}/rcpt" if ok else None,
        "refunded": ok and ch.amount_refunded >= ch.amount,
        "refunds": rc.embedded_list(
            [refund(r) for r in reversed(ch.refunds)], f"/v1/charges/{ch.id}/refunds"
        ),
        "review": None,
        "shipping": rc.shipping(c.name, c.address),
        "source": _card_source(ch, c),
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": ch.status,
        "transfer_data": None,
        "transfer_group": None,
    }


def _last_error(ch: Charge, c: Customer) -> JSON:
    return {
        "charge": ch.id,
        "code": "card_declined",
        "decline_code": "generic_decline",
        "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        "message": "Your card was declined.",
        "payment_method": payment_method(ch.pm, c),
        "type": "card_error",
    }


def payment_intent(pi: PaymentIntent, c: Customer) -> JSON:
    """Payment intent (with the pre-2022 embedded ``charges`` list)."""
    ok = pi.status == "succeeded"
    return {
        "id": pi.id,
        "object": "payment_intent",
        "amount": pi.amount,
        "amount_capturable": 0,
        "amount_received": pi.amount if ok else 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "charges": rc.embedded_list(
            [charge(ch, c) for ch in reversed(pi.charges)], f"/v1/charges?payment_intent={pi.id}"
        ),
        "client_secret": f"{pi.id}_secret_sim",
        "confirmation_method": "automatic",
        "created": pi.created,
        "currency": pi.currency,
        "customer": pi.customer_id,
        "description": "Subscription update",
        "invoice": pi.invoice_id,
        "last_payment_error": _last_error(pi.last_error, c) if pi.last_error else None,
        "livemode": False,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": pi.pm.id if pi.pm and ok else None,
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
        "shipping": rc.shipping(c.name, c.address),
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
        "coupon": None,
        "default_payment_method": None,
        "default_tax_rates": [],
        "end_date": ph.end,
        "invoice_settings": None,
        "items": [
            {
                "billing_thresholds": None,
                "plan": ph.price.id,
                "price": ph.price.id,
                "quantity": ph.quantity,
                "tax_rates": [],
            }
        ],
        "proration_behavior": "create_prorations",
        "start_date": ph.start,
        "transfer_data": None,
        "trial_end": None,
    }


def current_phase(s: Schedule, now: int) -> JSON | None:
    """The phase containing ``now`` (``None`` once released or outside all phases)."""
    if s.status != "active":
        return None
    for ph in s.phases:
        if ph.start <= now < ph.end:
            return {"end_date": ph.end, "start_date": ph.start}
    return None


def schedule(s: Schedule, now: int) -> JSON:
    """Subscription schedule object."""
    return {
        "id": s.id,
        "object": "subscription_schedule",
        "canceled_at": s.canceled_at,
        "completed_at": s.completed_at,
        "created": s.created,
        "current_phase": current_phase(s, now),
        "customer": s.customer_id,
        "default_settings": {
            "application_fee_percent": None,
            "automatic_tax": {"enabled": False},
            "billing_cycle_anchor": "automatic",
            "billing_thresholds": None,
            "collection_method": "charge_automatically",
            "default_payment_method": None,
            "default_source": None,
            "invoice_settings": {"days_until_due": None},
            "transfer_data": None,
        },
        "end_behavior": "release",
        "livemode": False,
        "metadata": {},
        "phases": [_phase(s, i) for i in range(len(s.phases))],
        "released_at": s.released_at,
        "released_subscription": s.released_subscription,
        "renewal_interval": None,
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
        "customer_balance_transaction": cn.balance_transaction if not cn.refund_id else None,
        "discount_amount": 0,
        "discount_amounts": [],
        "invoice": cn.invoice.id,
        "lines": rc.embedded_list(
            [
                {
                    "id": cn.line_id,
                    "object": "credit_note_line_item",
                    "amount": cn.amount,
                    "amount_excluding_tax": cn.amount,
                    "description": "Service credit",
                    "discount_amount": 0,
                    "discount_amounts": [],
                    "invoice_line_item": None,
                    "livemode": False,
                    "quantity": 1,
                    "tax_amounts": [],
                    "tax_rates": [],
                    "type": "custom_line_item",
                    "unit_amount": cn.amount,
                    "unit_amount_decimal": str(cn.amount),
                    "unit_amount_excluding_tax": str(cn.amount),
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
        "reason": cn.reason,
        "refund": cn.refund_id,
        "shipping_cost": None,
        "status": "issued",
        "subtotal": cn.amount,
        "subtotal_excluding_tax": cn.amount,
        "tax_amounts": [],
        "total": cn.amount,
        "total_excluding_tax": cn.amount,
        "type": "post_payment",
        "voided_at": None,
    }


def tax_id(t: TaxId) -> JSON:
    """Customer tax id object."""
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
