"""Resolver for the ``dahlia`` family: ``2026-03-25.dahlia`` and its monthly releases
(``2026-04-22``, ``2026-05-27``, ``2026-06-24``, ``2026-07-29``, ``2026-08-26`` ...).

Built from Stripe's changelog (docs.stripe.com/changelog/dahlia). Every change that touches
what the ledger reads, and what this resolver does with it:

Breaking, ``2026-03-25.dahlia``
* ``decimal_string`` fields (``price.unit_amount_decimal``, ``plan.amount_decimal``, invoice
  and credit-note line ``unit_amount_decimal``/``quantity_decimal``) are typed as decimals
  by the SDKs; on the wire they are still decimal strings. The shared reader parses strings
  and numbers exactly (``Decimal``), never floats: nothing to change.
* Checkout UI-mode and Stripe.js renames: not read.

Additive (monthly releases)
* ``2026-05-27``: **pending-update discounts**: ``subscription.pending_update`` gains
  ``discount`` (expanded) and ``discounts`` (ids unless expanded), the discounts the
  subscription will have when the update applies. This resolver reads them into
  ``PendingUpdate.discounts`` (unexpanded ids counted in ``discount_refs_unresolved``), and
  forward MRR applies them instead of the current discounts (``mrr.py`` rule 6).
* ``2026-05-27``: **billing schedules** (prebilling): ``subscription.billing_schedules`` and
  ``items[].billed_until``. Prebilling collects future periods early; the committed run-rate
  is still the item prices, so MRR is unchanged, and a prebilled invoice is an ordinary
  payment (revenue counts when paid, as for any invoice).
* ``2026-05-27``: ``invoice.amount_paid_off_stripe`` (invoice-object-amount-paid-off-stripe-
  property): the amount paid out of band, replacing the deprecated ``paid_out_of_band``
  boolean; only returned when a request includes it, never in event payloads. Revenue is the
  invoice's ``amount_paid`` as before, so nothing to resolve. Pending-update ``metadata``,
  proration ``credited_items`` on invoice items, discount eligibility for add-on invoice
  items: not read.
* ``2026-07-29``: item-level discounts on pending updates
  (``pending_update.subscription_items[].discounts``): read by the shared item reader.
* ``2026-08-26``: frozen fields on invoice items, Billie for invoices, a higher subscription
  item limit (items are summed however many there are), ``payment_method_types`` no longer
  writable on PaymentIntents (preview): not read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from services.ledger.domain.normalised import PendingUpdate
from services.ledger.domain.resolvers.clover import CloverResolver

DAHLIA_DATE = dt.date(2026, 3, 25)


class DahliaResolver(CloverResolver):
    family = "dahlia"
    release = "dahlia"
    introduced = DAHLIA_DATE

    def pending_update(self, pending: Mapping[str, Any], currency: str | None) -> PendingUpdate:
        base = super().pending_update(pending, currency)
        if pending.get("discount") is None and pending.get("discounts") is None:
            return base  # no discount change pending
        known, unresolved = self.discounts(pending)
        return base._replace(discounts=known, discount_refs_unresolved=unresolved)
