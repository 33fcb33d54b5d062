"""Pure checks and normalisation of what the host application sends.

Everything is validated before any SQL runs, so a bad request never reaches the database
and the error names the field at fault.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from services.ledger.directory.errors import InvalidArgument

MAX_ID_LENGTH = 255
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
MAX_TEXT_LENGTH = 1024

# Deliberately permissive: one "@", no spaces, a dot in the domain. Real deliverability is
# the host application's business; this only keeps obvious garbage out of the directory.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def require_id(value: str, field: str) -> str:
    """A host id: non-empty after stripping, bounded, without control characters."""
    stripped = value.strip()
    if not stripped:
        raise InvalidArgument(f"{field} is required")
    if len(stripped) > MAX_ID_LENGTH:
        raise InvalidArgument(f"{field} is longer than {MAX_ID_LENGTH} characters")
    if any(ord(ch) < 32 for ch in stripped):
        raise InvalidArgument(f"{field} contains control characters")
    return stripped


def optional_id(value: str, field: str) -> str | None:
    """Like :func:`require_id`, but an empty value means "none"."""
    return require_id(value, field) if value.strip() else None


def bounded_text(value: str, field: str, limit: int = MAX_TEXT_LENGTH) -> str:
    """Free text (names, user agents, reasons), stripped and bounded."""
    stripped = value.strip()
    if len(stripped) > limit:
        raise InvalidArgument(f"{field} is longer than {limit} characters")
    return stripped


def normalise_email(value: str) -> str:
    """The email in lower case, so lookups and uniqueness ignore case; malformed is refused."""
    email = value.strip().lower()
    if not email:
        raise InvalidArgument("email is required")
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        raise InvalidArgument(f"email {value!r} is malformed")
    return email


def normalise_ip(value: str) -> str | None:
    """The canonical text of an IPv4/IPv6 address (stored as ``inet``), None when empty."""
    raw = value.strip()
    if not raw:
        return None
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError as exc:
        raise InvalidArgument(f"ip {value!r} is not an IP address") from exc


def enum_value(number: int, names: dict[int, str], field: str) -> str:
    """The stored name of a protobuf enum number; UNSPECIFIED (0) and unknown are refused."""
    try:
        return names[number]
    except KeyError:
        raise InvalidArgument(f"{field} must be one of {sorted(names.values())}") from None


def timestamp(ts: Timestamp, present: bool, field: str) -> datetime | None:
    """A timezone-aware datetime from a message field, None when unset, refused when absurd."""
    if not present:
        return None
    try:
        value = ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument(f"{field} is out of range") from exc
    if value.year < 1970:
        raise InvalidArgument(f"{field} is before 1970")
    return value


def required_timestamp(ts: Timestamp, present: bool, field: str) -> datetime:
    value = timestamp(ts, present, field)
    if value is None:
        raise InvalidArgument(f"{field} is required")
    return value
