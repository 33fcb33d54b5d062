"""Selects the object renderer of an API version family.

Every family is rendered by one :class:`~.render_shared.FamilyRenderer` (an implementation of
:class:`Renderer`; ``render_legacy``, ``render_basil``, ``render_clover``, ``render_dahlia``
and ``render_endive`` each hold one instance), so the lifecycle code is written once and each
event is rendered in its customer's family. A new family is a :class:`~.config.Family` level,
its differences in ``FamilyRenderer`` and a ``render_<family>`` module.
"""

from __future__ import annotations

from typing import Protocol

from . import render_basil, render_clover, render_dahlia, render_endive, render_legacy
from .config import Family, family_of
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


_RENDERERS: dict[Family, Renderer] = {
    Family.LEGACY: render_legacy.RENDERER,
    Family.BASIL: render_basil.RENDERER,
    Family.CLOVER: render_clover.RENDERER,
    Family.DAHLIA: render_dahlia.RENDERER,
    Family.ENDIVE: render_endive.RENDERER,
}


def renderer_for(api_version: str) -> Renderer:
    """The renderer producing payload shapes of ``api_version``."""
    return _RENDERERS[family_of(api_version)]
