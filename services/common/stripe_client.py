"""The one place that builds Stripe API clients (real Stripe or the project's simulator)."""

from __future__ import annotations

import stripe

from services.common.config import env_int, env_optional, env_str


def make_stripe_client() -> stripe.StripeClient:
    """A client from ``STRIPE_API_KEY`` and, for the simulator, ``STRIPE_API_BASE``.

    Retries honour ``Stripe-Should-Retry`` and back off on ``429`` (``STRIPE_MAX_RETRIES``).
    """
    api_key = env_str("STRIPE_API_KEY", "sk_test_simulator")
    base = env_optional("STRIPE_API_BASE")
    kwargs: dict[str, object] = {"max_network_retries": env_int("STRIPE_MAX_RETRIES", 3)}
    if base:
        kwargs["base_addresses"] = {"api": base}
    return stripe.StripeClient(api_key, **kwargs)  # type: ignore[arg-type]
