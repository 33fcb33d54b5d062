"""Object shapes of the ``2025-03-31.basil`` API version family.

Modelled on Stripe's own current example objects (``shared/fixtures/stripe_objects``):
``current_period_start/end`` on subscription items, ``invoice.parent.subscription_details``,
line ``parent``/``pricing``, ``discounts`` lists instead of ``discount``, no ``invoice.charge``
(payments are ``invoice_payment`` objects) and no ``invoice`` on charges/payment intents.
A Discount still embeds its ``coupon`` (``source`` came with clover), subscriptions and
schedules are ``billing_mode: classic``. Later families build on these shapes:
``render_clover``, ``render_dahlia``, ``render_endive``.
"""

from __future__ import annotations

from .config import Family
from .model import Invoice
from .render_common import JSON
from .render_shared import FamilyRenderer

BASIL = True
RENDERER = FamilyRenderer(Family.BASIL)


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
