"""Stripe signature verification with several secrets (for rotation).

The check is Stripe's documented scheme, the same as ``stripe.WebhookSignature.verify_header``
(HMAC-SHA256 with the endpoint secret over ``"<t>.<body>"``, any ``v1`` signature of the
header may match, the timestamp must not be older than the tolerance) with the library's
error messages, done here because the library's version showed in ingest profiles (issue 12):
it rebuilt the signed text as a new string and re-encoded it, parsed the header once per
secret and set up the HMAC key per call. Here the header is parsed once, the HMAC state of
each secret is keyed once and copied, and the body's bytes are hashed as they are.

Beyond the library's check: the header must be ASCII, and a timestamp further in the future
than the tolerance is refused like a stale one (the library only bounds the past), so a
captured signature cannot be minted to stay valid for long.
"""

from __future__ import annotations

import hmac
import time
from hashlib import sha256

SCHEME = "v1"


class SignatureRejected(ValueError):
    """No configured secret verifies the header, or the timestamp is outside the tolerance."""


def parse_header(header: str) -> tuple[int, list[str]]:
    """The header's first ``t`` (as an integer) and every ``v1`` signature; ValueError when
    it has no well-formed timestamp or a ``v1`` item without a value (the library's rule).

    An item's value is what lies between its first and second ``=`` (the library splits
    with ``split("=", 2)``). One pass with ``str.partition`` (issue 12: the list of split
    lists and the generator it replaced cost ~3% of the ingest process's CPU);
    tests/ingest/test_signature_parity.py compares the verifier with the library.
    """
    timestamp: str | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, rest = item.partition("=")
        if key == SCHEME:
            if not sep:
                raise ValueError("Unable to extract timestamp and signatures from header")
            signatures.append(rest.partition("=")[0])
        elif key == "t":
            if not sep:  # as the library, whose list comprehension indexes every "t" item
                raise ValueError("Unable to extract timestamp and signatures from header")
            if timestamp is None:
                timestamp = rest.partition("=")[0]
    if timestamp is None:
        raise ValueError("Unable to extract timestamp and signatures from header")
    try:
        return int(timestamp), signatures
    except ValueError as exc:
        raise ValueError("Unable to extract timestamp and signatures from header") from exc


class SignatureVerifier:
    """Accepts a payload when any one of the configured endpoint secrets verifies it."""

    def __init__(self, secrets: list[str], tolerance_seconds: int) -> None:
        if not secrets:
            raise ValueError("at least one webhook secret is required")
        self._keyed = [
            hmac.new(secret.encode("utf-8"), digestmod=sha256)
            for secret in secrets
            if secret.strip(" \t\r\n\f\v")
        ]
        self._tolerance = tolerance_seconds

    def verify(self, payload: bytes, header: str | None) -> None:
        """Raise :class:`SignatureRejected` unless ``header`` signs ``payload``."""
        if not header:
            raise SignatureRejected("missing Stripe-Signature header")
        if not header.isascii():
            raise SignatureRejected("Stripe-Signature header is not ASCII")
        try:
            payload.decode("utf-8")  # Stripe signs text: a body that is not UTF-8 is not signed
        except UnicodeDecodeError as exc:
            raise SignatureRejected("body is not UTF-8") from exc
        if not self._keyed:
            raise SignatureRejected("No webhook secret value was provided")
        try:
            timestamp, signatures = parse_header(header)
        except ValueError as exc:
            raise SignatureRejected(str(exc)) from None
        if not signatures:
            raise SignatureRejected(f"No signatures found with expected scheme {SCHEME}")
        signed = b"%d." % timestamp + payload
        last_error = "no secret configured"
        for keyed in self._keyed:
            mac = keyed.copy()
            mac.update(signed)
            expected = mac.hexdigest()
            if not any(hmac.compare_digest(expected, s) for s in signatures):
                last_error = "No signatures found matching the expected signature for payload"
                continue
            now = time.time()
            if self._tolerance and timestamp < now - self._tolerance:
                # As the library: a stale match lets the next secret be tried.
                last_error = f"Timestamp outside the tolerance zone ({timestamp})"
                continue
            if timestamp > now + self._tolerance:
                raise SignatureRejected("timestamp is in the future beyond the tolerance")
            return
        raise SignatureRejected(last_error)
