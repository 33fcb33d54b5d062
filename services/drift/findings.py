"""A discrepancy as the detector finds it, before it is stored (DESIGN.md section 5 kinds)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MISSING_EVENT = "MissingEvent"
MISSING_HISTORICAL = "MissingHistoricalEvent"
MISSING_UNRECOVERABLE = "MissingHistoricalEventUnrecoverable"
UNCLASSIFIED = "UnclassifiedStripeEvent"
UNSUPPORTED_VERSION = "UnsupportedStripeApiVersion"
PAYLOAD_DIVERGENCE = "StripeEventPayloadDivergence"
STATE_MISMATCH = "SubscriptionStateMismatch"
EXTRA_EVENT = "ExtraEvent"

WARNING = "Warning"
CRITICAL = "Critical"

#: Default severity per kind: what loses money or history is Critical.
SEVERITY: dict[str, str] = {
    MISSING_EVENT: WARNING,
    MISSING_HISTORICAL: WARNING,
    MISSING_UNRECOVERABLE: CRITICAL,
    UNCLASSIFIED: CRITICAL,
    UNSUPPORTED_VERSION: CRITICAL,
    PAYLOAD_DIVERGENCE: WARNING,
    STATE_MISMATCH: CRITICAL,
    EXTRA_EVENT: WARNING,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the ledger and Stripe disagree on."""

    kind: str
    account_id: str | None = None
    subscription_id: str | None = None
    stripe_event_id: str | None = None
    stripe_object_id: str | None = None
    field: str | None = None
    ledger_value: str | None = None
    stripe_value: str | None = None
    detail: str | None = None
    severity: str | None = None

    @property
    def level(self) -> str:
        return self.severity or SEVERITY[self.kind]

    @property
    def fingerprint(self) -> str:
        """Identity of the finding across passes: the same kind about the same object and
        field is the same discrepancy (values may change while it stays open)."""
        key = "|".join(
            (
                self.kind,
                self.subscription_id or "",
                self.stripe_event_id or "",
                self.stripe_object_id or "",
                self.field or "",
            )
        )
        return hashlib.sha256(key.encode()).hexdigest()[:32]
