"""Signatures are accepted by the real stripe library, and only with the right secret."""

from __future__ import annotations

import time

import pytest
import stripe

from services.stripe_simulator import World, sign
from services.stripe_simulator.signing import compute_signature

SECRET = "whsec_test_simulator"


def test_construct_event_accepts(small_world: World) -> None:
    for event_id, body in small_world.event_bodies()[:50]:
        header = sign(body, SECRET, int(time.time()))
        event = stripe.Webhook.construct_event(body, header, SECRET)
        assert event.id == event_id


def test_wrong_secret_rejected(small_world: World) -> None:
    _, body = small_world.event_bodies()[0]
    header = sign(body, SECRET, int(time.time()))
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, header, "whsec_other")


def test_tampered_body_rejected(small_world: World) -> None:
    _, body = small_world.event_bodies()[0]
    header = sign(body, SECRET, int(time.time()))
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body + b" ", header, SECRET)


def test_header_format() -> None:
    assert sign(b"{}", "s", 1700000000) == (
        f"t=1700000000,v1={compute_signature(b'{}', 's', 1700000000)}")
    # Known vector: HMAC-SHA256("s", "1700000000.{}")
    import hashlib
    import hmac

    expected = hmac.new(b"s", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert compute_signature(b"{}", "s", 1700000000) == expected
