"""Domain errors of the directory; each is a :mod:`services.common.grpc_errors` error, so the
one error mapping gives it its gRPC status code.

Keeping gRPC calls out of the repository lets the same code serve a future HTTP or batch caller.
"""

from __future__ import annotations

from services.common import grpc_errors


class DirectoryError(grpc_errors.ServiceError):
    """Base of every error the directory reports to its caller."""


class InvalidArgument(DirectoryError, grpc_errors.InvalidArgument):
    """The request itself is wrong; retrying it unchanged cannot succeed."""


class NotFound(DirectoryError, grpc_errors.NotFound):
    """An entity the request names (or refers to) is not in the directory."""


class AlreadyExists(DirectoryError, grpc_errors.AlreadyExists):
    """A unique value (an email) already belongs to another entity."""


class FailedPrecondition(DirectoryError, grpc_errors.FailedPrecondition):
    """The directory's state forbids the change (a session id reused for another user)."""


class Unavailable(DirectoryError, grpc_errors.Unavailable):
    """The database could not be reached or timed out; the caller should retry."""
