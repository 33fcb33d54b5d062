"""The ingest's own signature check answers exactly as ``stripe.WebhookSignature`` does.

Unit test (no servers): headers valid, stale, mangled, with several or foreign schemes, with
one or two configured secrets; the verifier must accept exactly when the library accepts
(plus the project's own rule, refused timestamps in the future), with the library's message.
"""

from __future__ import annotations

import time

import pytest
import stripe

from services.ingest.signature import SignatureRejected, SignatureVerifier
from services.stripe_simulator.signing import compute_signature

BODY = b'{"id": "evt_1", "object": "event", "note": "caf\xc3\xa9"}'
SECRETS = ["whsec_primary", "whsec_rotated"]
TOLERANCE = 300


def _headers(now: int) -> list[str]:
    good = compute_signature(BODY, SECRETS[0], now)
    second = compute_signature(BODY, SECRETS[1], now)
    stale = compute_signature(BODY, SECRETS[0], now - 1000)
    other = compute_signature(BODY, "whsec_other", now)
    return [
        f"t={now},v1={good}",
        f"t={now},v1={second}",
        f"t={now},v1={other},v1={good}",
        f"t={now},v0={good}",
        f"t={now},v1={other}",
        f"t={now - 1000},v1={stale}",
        f"t={now - 1000},v1={good}",
        f"v1={good},t={now}",
        f"t={now},t={now - 5},v1={good}",
        f"t={now},t,v1={good}",
        f"t={now},v1={good},v1",
        f"t={now},v1={good}=x",
        f"t={now}=,v1={good}",
        f"t=,v1={good}",
        f"t={now},v1=,v1={good}",
        f"t={now},,v1={good}",
        f"=,t={now},v1={good}",
        f"t= {now},v1={good}",
        f"t={now}=x,v1={good}",
        f"t=abc,v1={good}",
        f"t,v1={good}",
        f"t={now},v1",
        f"v1={good}",
        f"t={now}",
        f"t={now},v1={good.upper()}",
        f"t={now}, v1={good}",
        "garbage",
    ]


def _library(header: str, secrets: list[str]) -> str | None:
    """None when the library accepts with one of the secrets, else its last message."""
    error = "no secret configured"
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(BODY.decode(), header, secret, TOLERANCE)
        except stripe.SignatureVerificationError as exc:
            error = str(exc.user_message or exc)
            continue
        return None
    return error


@pytest.mark.parametrize("secrets", [SECRETS[:1], SECRETS, SECRETS[::-1]])
def test_accepts_and_refuses_exactly_as_the_stripe_library(secrets: list[str]) -> None:
    now = int(time.time())
    verifier = SignatureVerifier(secrets, TOLERANCE)
    for header in _headers(now):
        expected = _library(header, secrets)
        try:
            verifier.verify(BODY, header)
        except SignatureRejected as exc:
            assert expected is not None, f"refused what the library accepts: {header}"
            assert str(exc) == expected, header
        else:
            assert expected is None, f"accepted what the library refuses: {header}"


def test_a_timestamp_beyond_the_tolerance_in_the_future_is_refused() -> None:
    future = int(time.time()) + 2 * TOLERANCE
    header = f"t={future},v1={compute_signature(BODY, SECRETS[0], future)}"
    assert _library(header, SECRETS) is None  # the library only bounds the past
    with pytest.raises(SignatureRejected, match="future"):
        SignatureVerifier(SECRETS, TOLERANCE).verify(BODY, header)


def test_a_body_that_is_not_utf8_is_refused() -> None:
    body = b"\xff\xfe{}"
    now = int(time.time())
    header = f"t={now},v1={compute_signature(body, SECRETS[0], now)}"
    with pytest.raises(SignatureRejected, match="UTF-8"):
        SignatureVerifier(SECRETS, TOLERANCE).verify(body, header)
