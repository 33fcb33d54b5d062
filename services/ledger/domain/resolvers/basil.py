"""Resolver for the ``basil`` family: ``2025-03-31.basil`` and later ``.basil`` releases.

Shape: ``current_period_start/end`` on each subscription **item** (the subscription's period
is the earliest item start / latest item end), ``invoice.parent.subscription_details
.subscription`` instead of ``invoice.subscription``, no ``invoice.charge`` /
``invoice.payment_intent`` (payments are ``invoice_payment`` objects), discounts as
``discount.source.coupon``. Falls back to legacy locations when present.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar

from services.ledger.domain.normalised import SubscriptionItem
from services.ledger.domain.resolvers._common import BaseResolver, as_int, item_periods, ref_id
from services.ledger.domain.resolvers.base import ApiVersion

BASIL_DATE = dt.date(2025, 3, 31)


class BasilResolver(BaseResolver):
    """Basil shapes; the later families (``clover``, ``dahlia``, ``endive``) subclass it and
    set only ``family``/``release``/``introduced`` unless a shape the ledger reads changed."""

    family = "basil"
    #: The release name after the date in ``api_version`` (``2025-03-31.basil``).
    release: ClassVar[str] = "basil"
    introduced = BASIL_DATE

    def accepts(self, version: ApiVersion) -> bool:
        return version.release == self.release and version.date >= self.introduced

    def subscription_periods(
        self, obj: Mapping[str, Any], items: tuple[SubscriptionItem, ...]
    ) -> tuple[int | None, int | None]:
        start, end = item_periods(items)
        if start is None and end is None:
            return as_int(obj.get("current_period_start")), as_int(obj.get("current_period_end"))
        return start, end

    def invoice_subscription_id(self, obj: Mapping[str, Any]) -> str | None:
        return self._parent_subscription(obj) or self._legacy_subscription(obj)

    def invoice_charge_id(self, obj: Mapping[str, Any]) -> str | None:
        return ref_id(obj.get("charge"))  # absent in basil; kept if a payload still has it
