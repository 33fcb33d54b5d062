"""Resolver for the ``endive`` family: ``2026-10-28.endive`` (the version the installed
``stripe`` library pins) and the other ``.endive`` releases (the changelog dates the family's
breaking changes ``2026-09-30.endive``; ``2026-11-18.endive`` is additive).

Built from Stripe's changelog (docs.stripe.com/changelog/endive). Every change that touches
what the ledger reads, and what this resolver does with it:

Breaking
* ``billing_cycle_anchor`` is a polymorphic object (``{type: "now"}``, ``{type:
  "timestamp", timestamp: ...}``) when *updating* or *resuming* subscriptions and in invoice
  previews (polymorphic-billing-cycle-anchor): a request-side change; the ledger never reads
  the anchor (periods come from the items), so either form is harmless.
* ``payment_method_types`` can no longer be written on Checkout Sessions, PaymentIntents and
  SetupIntents (it stays a read-only property) and Elements rejects ``paymentMethodTypes``:
  request/client side, not read.
* Payment Evaluation signal scores become nullable: not read.

Additive (``2026-11-18``): Account Links v2 dashboard access, reporting and sandbox APIs: not
read.

No shape the ledger reads changed since dahlia, so this resolver is
:class:`~.dahlia.DahliaResolver` under another release name.
"""

from __future__ import annotations

import datetime as dt

from services.ledger.domain.resolvers.dahlia import DahliaResolver

ENDIVE_DATE = dt.date(2026, 9, 30)


class EndiveResolver(DahliaResolver):
    family = "endive"
    release = "endive"
    introduced = ENDIVE_DATE
