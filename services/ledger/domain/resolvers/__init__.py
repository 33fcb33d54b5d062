"""Payload resolvers, one per Stripe API-version family, selected by ``api_version``.

* ``legacy``: every dated version before ``2025-03-31`` (undotted dates such as
  ``"2020-08-27"`` or ``"2016-03-07; orders_beta=v3"``, and ``.acacia`` releases).
* ``basil``: ``2025-03-31.basil`` and later ``.basil`` releases.

Anything else (unparseable, missing, or a family no resolver accepts such as ``.clover`` or
``.dahlia``) resolves to ``UnsupportedApiVersion``; a new family is a new resolver added to
``DEFAULT_REGISTRY``, not a rewrite.
"""

from __future__ import annotations

from services.ledger.domain.normalised import NormalisedEvent
from services.ledger.domain.resolvers.base import (
    ApiVersion,
    PayloadResolver,
    ResolverRegistry,
    UnsupportedApiVersion,
    parse_api_version,
)
from services.ledger.domain.resolvers.basil import BasilResolver
from services.ledger.domain.resolvers.legacy import LegacyResolver

__all__ = [
    "DEFAULT_REGISTRY",
    "ApiVersion",
    "BasilResolver",
    "LegacyResolver",
    "PayloadResolver",
    "ResolverRegistry",
    "UnsupportedApiVersion",
    "parse_api_version",
    "resolve",
]

DEFAULT_REGISTRY = ResolverRegistry([LegacyResolver(), BasilResolver()])


def resolve(event: object) -> NormalisedEvent | UnsupportedApiVersion:
    """Normalise a raw Stripe event (parsed JSON). Never raises."""
    return DEFAULT_REGISTRY.resolve(event)
