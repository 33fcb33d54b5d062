"""Deterministic, unique, Stripe-looking identifiers.

Ids are built from a per-world tag (derived from the seed, so different seeds never collide)
plus counters, never from randomness: uniqueness is guaranteed by construction, and the
generator stays fast because no set of issued ids has to be kept.
"""

from __future__ import annotations

import hashlib

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_MASK64 = (1 << 64) - 1


def b62(n: int, width: int) -> str:
    """Fixed-width base62 encoding of a non-negative integer (wider if it does not fit)."""
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    s = "".join(reversed(out))
    return s.rjust(width, "0")


def mix64(x: int) -> int:
    """splitmix64 finaliser: a cheap bijective scramble used to make counters look random."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def world_tag(seed: int) -> str:
    """Six base62 characters identifying a seed; prefixes every id of that world."""
    digest = hashlib.sha256(f"stripe-sim:{seed}".encode()).digest()
    return b62(int.from_bytes(digest[:8], "big"), 6)[:6]


def object_id(prefix: str, tag: str, owner: int, counter: int) -> str:
    """Id for the ``counter``-th object created by owner ``owner`` (a customer index).

    ``owner`` and ``counter`` are encoded positionally so two owners can never produce the same
    id; a scrambled suffix makes ids look like Stripe's random ones.
    """
    tail = b62(mix64((owner << 24) ^ counter) & 0xFFFFFFFFFFFF, 9)[-6:]
    return f"{prefix}_{tag}{b62(owner, 4)}{b62(counter, 4)}{tail}"


def event_id(tag: str, seq: int) -> str:
    """``evt_`` id for the ``seq``-th event of the world (unique by construction)."""
    return f"evt_{tag}{b62(seq, 6)}{b62(mix64(seq) & 0xFFFFFFFFFFFF, 9)[-12:]}"


def request_id(tag: str, seq: int) -> str:
    """``req_`` id for the API request that caused event ``seq``."""
    return f"req_{tag}{b62(mix64(seq ^ 0x5EED) & 0xFFFFFFFF, 8)}"


def idempotency_key(seq: int) -> str:
    """A UUID-shaped idempotency key derived from ``seq``."""
    h = f"{mix64(seq ^ 0xA11CE):016x}{mix64(seq ^ 0xB0B):016x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"
