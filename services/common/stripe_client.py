"""The one place that builds Stripe API clients (real Stripe or the project's simulator)."""

from __future__ import annotations

from dataclasses import dataclass

import stripe

from services.common.config import env_int, env_optional, env_str, redacted_repr


@dataclass(frozen=True, slots=True)
class StripeSettings:
    """``STRIPE_API_KEY``, ``STRIPE_API_BASE`` (the simulator's URL) and ``STRIPE_MAX_RETRIES``."""

    api_key: str
    api_base: str | None
    max_retries: int

    # Secrets (webhook secrets, API keys, database passwords) never appear in a repr.
    __repr__ = redacted_repr

    @classmethod
    def from_env(cls) -> StripeSettings:
        return cls(
            api_key=env_str("STRIPE_API_KEY", "sk_test_simulator"),
            api_base=env_optional("STRIPE_API_BASE"),
            max_retries=env_int("STRIPE_MAX_RETRIES", 3),
        )


def make_stripe_client(settings: StripeSettings) -> stripe.StripeClient:
    """A client whose retries honour ``Stripe-Should-Retry`` and back off on ``429``."""
    if settings.api_base:
        return stripe.StripeClient(
            settings.api_key,
            base_addresses={"api": settings.api_base},
            max_network_retries=settings.max_retries,
        )
    return stripe.StripeClient(settings.api_key, max_network_retries=settings.max_retries)
