"""Opaque keyset page tokens shared by every list RPC.

A token is the sort key of the last row served, so pages stay stable while rows are being
appended (offset paging would skip or repeat rows under inserts).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime

from services.common.grpc_errors import InvalidArgument
from services.common.timeconv import from_micros

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class BadPageToken(InvalidArgument, ValueError):
    """The token was not produced by this service."""


class BadPageSize(InvalidArgument, ValueError):
    """A negative page size."""


MAX_TOKEN_LENGTH = 4096
INT64 = 2**63


def int_key(value: object) -> int:
    """An integer item of a token's key, within PostgreSQL's bigint range."""
    if isinstance(value, bool) or not isinstance(value, int) or not -INT64 <= value < INT64:
        raise BadPageToken("malformed page_token")
    return value


def text_key(value: object) -> str:
    """A text item of a token's key (no NUL: PostgreSQL text cannot hold it)."""
    if not isinstance(value, str) or "\x00" in value:
        raise BadPageToken("malformed page_token")
    return value


def time_key(value: object) -> datetime:
    """A microseconds-since-epoch item of a token's key, as a datetime."""
    try:
        return from_micros(int_key(value))
    except OverflowError as exc:
        raise BadPageToken("malformed page_token") from exc


def page_size(requested: int) -> int:
    """Clamp a client's page size into [1, MAX_PAGE_SIZE]; 0 means the default."""
    if requested < 0:
        raise BadPageSize("page_size must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(key: Sequence[object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_token(token: str) -> list[object] | None:
    """The key of the previous page's last row, or None for the first page."""
    if not token:
        return None
    if len(token) > MAX_TOKEN_LENGTH:
        raise BadPageToken("malformed page_token")
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPageToken("malformed page_token") from exc
    if not isinstance(key, list):
        raise BadPageToken("malformed page_token")
    return key
