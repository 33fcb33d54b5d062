"""Stripe signature verification with several secrets (for rotation).

Beyond the ``stripe`` library's check: the header must be ASCII (the library's constant-time
comparison raises TypeError on anything else), and a timestamp further in the future than
the tolerance is refused like a stale one (the library only bounds the past), so a captured
signature cannot be minted to stay valid for long.
"""

from __future__ import annotations

import time

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
        if not header.isascii():
            raise SignatureRejected("Stripe-Signature header is not ASCII")
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
            self._check_not_in_future(header)
            return
        raise SignatureRejected(last_error)

    def _check_not_in_future(self, header: str) -> None:
        # The header verified, so its "t=" item is a well-formed integer.
        for item in header.split(","):
            key, _, value = item.strip().partition("=")
            if key == "t" and int(value) > time.time() + self._tolerance:
                raise SignatureRejected("timestamp is in the future beyond the tolerance")
