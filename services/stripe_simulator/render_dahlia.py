"""Object shapes of the ``dahlia`` family (``2026-03-25.dahlia`` and its monthly releases; the
simulator renders ``2026-05-27.dahlia`` by default): clover's, plus billing schedules
(``subscription.billing_schedules``, ``items[].billed_until``, from ``2026-05-27``). Stripe's
current example objects (``shared/fixtures/stripe_objects``, 2026-08) have these shapes.
Pending-update discounts are not rendered: the simulator never leaves an update pending.

Built by :class:`~.render_shared.FamilyRenderer` (the differences are its ``DAHLIA`` tests).
"""

from __future__ import annotations

from .config import Family
from .render_shared import FamilyRenderer

RENDERER = FamilyRenderer(Family.DAHLIA)
