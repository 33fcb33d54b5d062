"""Random credentials (session ids, API tokens, CSRF tokens) and their stored hashes.

They carry 256 bits of entropy, so a plain SHA-256 is enough to store them: nobody can guess
one from its hash, and lookups stay one index probe.
"""

from __future__ import annotations

import hashlib
import secrets

API_TOKEN_PREFIX = "gwt_"  # noqa: S105 - a visible marker, not a secret


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)
