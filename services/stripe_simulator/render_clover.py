"""Object shapes of the ``2025-09-30.clover`` API version family: basil's, plus

* a Discount references its coupon by id through ``source: {type: "coupon", coupon: <id>}``
  and no longer embeds ``coupon`` (in webhook events too);
* new subscriptions and schedules are ``billing_mode: {type: "flexible"}`` (the default
  since clover);
* from later clover releases (rendered for the whole family): credit-note ``refunds[]`` carry
  ``type``/``payment_record_refund`` (2025-10-29) and v1 objects ``customer_account``
  (2025-12-15, Accounts v2 interoperability).

Built by :class:`~.render_shared.FamilyRenderer` (the differences are its ``CLOVER`` tests).
"""

from __future__ import annotations

from .config import Family
from .render_shared import FamilyRenderer

RENDERER = FamilyRenderer(Family.CLOVER)
