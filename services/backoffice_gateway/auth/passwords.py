"""Password hashing with scrypt (hashlib, no extra dependency).

Stored form: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``, so the cost can be raised later
while old hashes still verify. Verification runs in constant time, and an unknown user costs
the same work as a known one (no user enumeration by timing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1
DKLEN = 32
MIN_LENGTH = 12
MAX_LENGTH = 1024  # scrypt's cost does not depend on length, but bodies should stay small


class WeakPassword(ValueError):
    """The password does not meet the minimum the gateway requires."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=DKLEN, maxmem=64 * 1024 * 1024
    )


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    check_strength(password)
    salt = secrets.token_bytes(16)
    digest = _derive(password, salt, N, R, P)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


_DUMMY = f"scrypt${N}${R}${P}${_b64(b'0' * 16)}${_b64(b'0' * DKLEN)}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``; ``stored`` None burns the same time."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        scheme, n, r, p, salt, digest = (stored or _DUMMY).split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):  # a malformed stored hash verifies nothing
        return False
    return stored is not None and hmac.compare_digest(actual, expected)


def generate_password() -> str:
    """A random password for a new operator (shown once, stored hashed)."""
    return secrets.token_urlsafe(18)
