"""Stripe webhook signatures (``Stripe-Signature`` header), byte-for-byte like Stripe."""

from __future__ import annotations

import hashlib
import hmac


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.{payload}"`` keyed with the endpoint secret."""
    signed = str(int(timestamp)).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value: ``t=<timestamp>,v1=<signature>``.

    Stripe signs the exact bytes it sends, so callers must sign the body they POST.
    """
    return f"t={int(timestamp)},v1={compute_signature(payload, secret, timestamp)}"
