"""The ledger's pure domain core: money, normalised events, payload resolvers, the MRR
function, the classifier and MRR movements. No I/O, no database."""

# First: decides whether the compiled (mypyc) form of the modules below is used (native.py).
from services.ledger.domain import native  # isort: split

from services.ledger.domain.classifier import (
    BillingEventType,
    Classification,
    classify,
    classify_payload,
    is_billing_event,
)
from services.ledger.domain.money import Money, format_minor, normalise_currency
from services.ledger.domain.movements import (
    MrrMovement,
    MrrMovementCategory,
    movement_for_row,
    mrr_movement,
)
from services.ledger.domain.mrr import MrrResult, compute_mrr
from services.ledger.domain.normalised import NormalisedEvent, SubscriptionSnapshot
from services.ledger.domain.resolvers import UnsupportedApiVersion, resolve

__all__ = [
    "BillingEventType",
    "Classification",
    "Money",
    "MrrMovement",
    "MrrMovementCategory",
    "MrrResult",
    "NormalisedEvent",
    "SubscriptionSnapshot",
    "UnsupportedApiVersion",
    "classify",
    "classify_payload",
    "compute_mrr",
    "format_minor",
    "is_billing_event",
    "movement_for_row",
    "mrr_movement",
    "native",
    "normalise_currency",
    "resolve",
]
