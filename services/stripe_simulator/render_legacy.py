"""Object shapes of the 2020-08-27 API version family.

Modelled on the real 2020-08-27 webhook payloads in ``shared/fixtures/stripe_events``: period
fields on the subscription, ``plan``/``quantity`` mirrored on the subscription, a singular
``discount``, and ``charge``/``payment_intent``/``subscription``/``paid`` on invoices.
The shapes are built by :class:`~.render_shared.FamilyRenderer` (shared with basil).
"""

from __future__ import annotations

from .config import Family
from .render_shared import FamilyRenderer

BASIL = False
RENDERER = FamilyRenderer(Family.LEGACY)
