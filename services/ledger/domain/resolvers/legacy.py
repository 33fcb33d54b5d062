"""Resolver for every dated Stripe API version before ``2025-03-31`` (incl. ``.acacia``).

Shape: ``subscription.current_period_start/end`` on the subscription, ``invoice.subscription``
and ``invoice.charge`` / ``invoice.payment_intent`` on the invoice, ``subscription.discount``.
Falls back to the basil locations when the legacy ones are absent (envelope version and object
shape do not always agree).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar

from services.ledger.domain.normalised import SubscriptionItem
from services.ledger.domain.resolvers._common import BaseResolver, as_int, item_periods, ref_id
from services.ledger.domain.resolvers.base import ApiVersion

BASIL_DATE = dt.date(2025, 3, 31)


class LegacyResolver(BaseResolver):
    family = "legacy"
    introduced = dt.date.min
    releases: ClassVar[frozenset[str | None]] = frozenset({None, "acacia"})

    def accepts(self, version: ApiVersion) -> bool:
        return version.date < BASIL_DATE and version.release in self.releases

    def subscription_periods(
        self, obj: Mapping[str, Any], items: tuple[SubscriptionItem, ...]
    ) -> tuple[int | None, int | None]:
        start = as_int(obj.get("current_period_start"))
        end = as_int(obj.get("current_period_end"))
        if start is None and end is None:
            return item_periods(items)
        return start, end

    def invoice_subscription_id(self, obj: Mapping[str, Any]) -> str | None:
        return self._legacy_subscription(obj) or self._parent_subscription(obj)

    def invoice_charge_id(self, obj: Mapping[str, Any]) -> str | None:
        return ref_id(obj.get("charge"))
