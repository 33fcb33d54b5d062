"""Opaque keyset page tokens shared by every list RPC.

A token is the sort key of the last row served, so pages stay stable while rows are being
appended (offset paging would skip or repeat rows under inserts).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class BadPageToken(ValueError):
    """The token was not produced by this service."""


def page_size(requested: int) -> int:
    """Clamp a client's page size into [1, MAX_PAGE_SIZE]; 0 means the default."""
    if requested < 0:
        raise ValueError("page_size must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(key: Sequence[object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_token(token: str) -> list[object] | None:
    """The key of the previous page's last row, or None for the first page."""
    if not token:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPageToken("malformed page_token") from exc
    if not isinstance(key, list):
        raise BadPageToken("malformed page_token")
    return key
