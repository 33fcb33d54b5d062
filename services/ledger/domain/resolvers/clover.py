"""Resolver for the ``clover`` family: ``2025-09-30.clover`` and its later monthly releases.

Built from Stripe's changelog (docs.stripe.com/changelog/clover, one page per change). Every
change that touches what the ledger reads, and what this resolver does with it:

Breaking, ``2025-09-30.clover``
* **Discount ``source`` replaces ``coupon``** (add-discount-source-property): a Discount
  carries ``source: {type: "coupon", coupon: <id>}`` and no longer the auto-expanded
  ``coupon`` object, in webhook events too. The shared discount reader takes
  ``source.coupon`` when ``coupon`` is absent; a coupon given by id only has unknown terms,
  so the discount counts as an unresolved reference (MRR flag ``discount_terms_unknown``),
  exactly like an unexpanded basil ``discounts`` id. An expanded ``source.coupon`` is read
  in full.
* **Flexible billing mode is the default for new subscriptions**
  (billing-mode-default-flexible): ``subscription.billing_mode.type`` is ``flexible``, which
  changes how prorations are computed and how proration lines look on invoices. The ledger's
  MRR comes from the subscription's prices, quantities and discounts, never from invoice
  line amounts, and payments come from invoice totals: nothing to resolve differently.
* **Proration discounts may be itemised** (itemize-proration-discount-amounts, opt-in
  ``proration_discounts: itemized``): proration line ``amount`` becomes gross and
  ``discount_amounts`` carry the discount. Not read (see above).
* **Schedule phase ``end_date`` computed with billing-cycle-anchor changes**
  (billing-cycle-anchor-resets-during-phase-computation): only the computed value changes;
  phases are read as given (``start_date``/``end_date``), so queued downgrades are found the
  same way.
* Removed ``iterations`` on schedule phases (request parameter only) and promotion codes'
  ``coupon`` moved to ``promotion.coupon`` (promotion codes are not read): nothing to do.

Additive, later clover releases
* ``2025-10-29``: **credit-note refunds of type ``payment_record_refund``**
  (``credit_note.refunds[]`` gains ``type`` and ``payment_record_refund``; ``refund`` is null
  for a refund recorded off Stripe). Only entries with a Stripe ``refund`` count as "paid back
  by a refund" (that money also arrives as ``charge.refunded``); an off-Stripe refund has no
  such event, so the shared credit-note reader leaves it in the credit note's uncovered part,
  which the classifier books as ``PaymentRefunded``.
* ``2025-12-15``: ``subtotal`` on invoice line items; ``customer_account`` on v1 objects
  (Accounts v2 interoperability); the customer portal may reset ``billing_cycle_anchor``.
  Not read.
* ``2026-02-25``: ``payment_behavior`` on subscription-item deletion (a deletion can become a
  ``pending_update``, which the shared reader already handles). Invoices paid by Pay by Bank
  are ordinary invoice payments.

Everything else (subscriptions and items, prices/plans, invoices and ``invoice_payment``,
charges, refunds, credit notes, customers, payment methods) keeps the basil shapes, so this
resolver is :class:`~.basil.BasilResolver` under another release name.
"""

from __future__ import annotations

import datetime as dt

from services.ledger.domain.resolvers.basil import BasilResolver

CLOVER_DATE = dt.date(2025, 9, 30)


class CloverResolver(BasilResolver):
    family = "clover"
    release = "clover"
    introduced = CLOVER_DATE
