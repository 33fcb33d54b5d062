"""Payload resolvers, one per Stripe API-version family, selected by ``api_version``.

* ``legacy``: every dated version before ``2025-03-31`` (undotted dates such as
  ``"2020-08-27"`` or ``"2016-03-07; orders_beta=v3"``, and ``.acacia`` releases).
* ``basil``: ``2025-03-31.basil`` and later ``.basil`` releases.
* ``clover``: ``2025-09-30.clover`` and later ``.clover`` releases (basil shapes; discounts
  reference their coupon through ``source``).
* ``dahlia``: ``2026-03-25.dahlia`` and its monthly releases (adds pending-update discounts).
* ``endive``: ``.endive`` releases from ``2026-09-30`` (``2026-10-28.endive`` is what the
  ``stripe`` library pins; no shape the ledger reads changed).

Each resolver's docstring lists the changelog entries of its family that touch what the
ledger reads. A version newer than every known family (a release name dated after the newest
family was introduced, e.g. ``2027-03-31.fig``) is resolved by the newest resolver and
flagged ``api_version_newer_than_known``; anything else no resolver accepts (unparseable,
missing, an unknown release older than the newest family) resolves to
``UnsupportedApiVersion``. A new family is a new resolver (a subclass of its parent that
overrides only the hooks whose shapes changed) added to ``DEFAULT_REGISTRY``, not a rewrite.
"""

from __future__ import annotations

from services.ledger.domain.normalised import NormalisedEvent
from services.ledger.domain.resolvers.base import (
    API_VERSION_NEWER_THAN_KNOWN,
    ApiVersion,
    PayloadResolver,
    ResolverRegistry,
    UnsupportedApiVersion,
    parse_api_version,
)
from services.ledger.domain.resolvers.basil import BasilResolver
from services.ledger.domain.resolvers.clover import CloverResolver
from services.ledger.domain.resolvers.dahlia import DahliaResolver
from services.ledger.domain.resolvers.endive import EndiveResolver
from services.ledger.domain.resolvers.legacy import LegacyResolver

__all__ = [
    "API_VERSION_NEWER_THAN_KNOWN",
    "DEFAULT_REGISTRY",
    "ApiVersion",
    "BasilResolver",
    "CloverResolver",
    "DahliaResolver",
    "EndiveResolver",
    "LegacyResolver",
    "PayloadResolver",
    "ResolverRegistry",
    "UnsupportedApiVersion",
    "parse_api_version",
    "resolve",
]

DEFAULT_REGISTRY = ResolverRegistry(
    [LegacyResolver(), BasilResolver(), CloverResolver(), DahliaResolver(), EndiveResolver()]
)


def resolve(event: object) -> NormalisedEvent | UnsupportedApiVersion:
    """Normalise a raw Stripe event (parsed JSON). Never raises."""
    return DEFAULT_REGISTRY.resolve(event)
