"""Domain errors of the directory; the servicer maps each one to one gRPC status code.

Keeping gRPC out of the repository lets the same code serve a future HTTP or batch caller.
"""

from __future__ import annotations


class DirectoryError(Exception):
    """Base of every error the directory reports to its caller."""


class InvalidArgument(DirectoryError):
    """The request itself is wrong; retrying it unchanged cannot succeed."""


class NotFound(DirectoryError):
    """An entity the request names (or refers to) is not in the directory."""


class AlreadyExists(DirectoryError):
    """A unique value (an email) already belongs to another entity."""


class FailedPrecondition(DirectoryError):
    """The directory's state forbids the change (a session id reused for another user)."""


class Unavailable(DirectoryError):
    """The database could not be reached or timed out; the caller should retry."""
