"""Errors of the query layer; the servicer maps each to one gRPC status code."""

from __future__ import annotations


class QueryError(Exception):
    """Base class: the message is safe to show to the caller."""


class InvalidArgument(QueryError):
    """INVALID_ARGUMENT: a bad period, sort key, lens, page size or page token."""


class NotFound(QueryError):
    """NOT_FOUND: an unknown account."""


class Unavailable(QueryError):
    """UNAVAILABLE: the database cannot be reached (retry later)."""


__all__ = ["InvalidArgument", "NotFound", "QueryError", "Unavailable"]
