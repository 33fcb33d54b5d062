"""Selects the object renderer of an API version family.

Both families are rendered by one :class:`~.render_shared.FamilyRenderer` (an implementation of
:class:`Renderer`; ``render_legacy.RENDERER`` and ``render_basil.RENDERER`` are its two
instances), so the lifecycle code is written once and each event is rendered in its customer's
family.
"""

from __future__ import annotations

from typing import Protocol

from . import render_basil, render_legacy
from .config import is_basil
from .model import (
    Charge,
    Coupon,
    CreditNote,
    Customer,
    Discount,
    Invoice,
    PaymentIntent,
    PaymentMethod,
    Refund,
    Schedule,
    Subscription,
    TaxId,
)
from .render_common import JSON


class Renderer(Protocol):
    """Functions rendering model state as Stripe objects of one API version family."""

    BASIL: bool

    def coupon(self, c: Coupon) -> JSON: ...
    def discount(self, d: Discount) -> JSON: ...
    def customer(self, c: Customer) -> JSON: ...
    def payment_method(self, pm: PaymentMethod, c: Customer | None) -> JSON: ...
    def subscription(self, s: Subscription) -> JSON: ...
    def invoice(self, inv: Invoice, c: Customer, account_name: str) -> JSON: ...
    def refund(self, r: Refund) -> JSON: ...
    def charge(self, ch: Charge, c: Customer) -> JSON: ...
    def payment_intent(self, pi: PaymentIntent, c: Customer) -> JSON: ...
    def schedule(self, s: Schedule, now: int) -> JSON: ...
    def credit_note(self, cn: CreditNote) -> JSON: ...
    def tax_id(self, t: TaxId) -> JSON: ...


def renderer_for(api_version: str) -> Renderer:
    """The renderer producing payload shapes of ``api_version``."""
    return render_basil.RENDERER if is_basil(api_version) else render_legacy.RENDERER
