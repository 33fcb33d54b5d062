"""Object shapes of the ``endive`` family (``2026-10-28.endive``, the version the ``stripe``
library pins): dahlia's. Endive's breaking changes are request-side (polymorphic
``billing_cycle_anchor`` on updates, no writable ``payment_method_types``), so the objects the
simulator renders do not differ; a version newer than every family renders like this one.
"""

from __future__ import annotations

from .config import Family
from .render_shared import FamilyRenderer

RENDERER = FamilyRenderer(Family.ENDIVE)
