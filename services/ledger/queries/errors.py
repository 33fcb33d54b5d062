"""Errors of the query layer; each is a :mod:`services.common.grpc_errors` error, so the one
error mapping gives it its gRPC status code."""

from __future__ import annotations

from services.common import grpc_errors


class QueryError(grpc_errors.ServiceError):
    """Base class: the message is safe to show to the caller."""


class InvalidArgument(QueryError, grpc_errors.InvalidArgument):
    """INVALID_ARGUMENT: a bad period, sort key, lens, page size or page token."""


class NotFound(QueryError, grpc_errors.NotFound):
    """NOT_FOUND: an unknown account."""


class Unavailable(QueryError, grpc_errors.Unavailable):
    """UNAVAILABLE: the database cannot be reached (retry later)."""


__all__ = ["InvalidArgument", "NotFound", "QueryError", "Unavailable"]
