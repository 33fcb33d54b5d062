"""Stripe signature verification with several secrets (for rotation)."""

from __future__ import annotations

import stripe


class SignatureRejected(ValueError):
    """No configured secret verifies the header, or the timestamp is outside the tolerance."""


class SignatureVerifier:
    """Accepts a payload when any one of the configured endpoint secrets verifies it."""

    def __init__(self, secrets: list[str], tolerance_seconds: int) -> None:
        if not secrets:
            raise ValueError("at least one webhook secret is required")
        self._secrets = list(secrets)
        self._tolerance = tolerance_seconds

    def verify(self, payload: bytes, header: str | None) -> None:
        """Raise :class:`SignatureRejected` unless ``header`` signs ``payload``."""
        if not header:
            raise SignatureRejected("missing Stripe-Signature header")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SignatureRejected("body is not UTF-8") from exc
        last_error = "no secret configured"
        for secret in self._secrets:
            try:
                stripe.WebhookSignature.verify_header(text, header, secret, self._tolerance)
            except stripe.SignatureVerificationError as exc:
                last_error = str(exc.user_message or exc)
                continue
            return
        raise SignatureRejected(last_error)
