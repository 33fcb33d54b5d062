"""The gateway's error answers: one exception type and one JSON body shape for every error.

Every error the JSON API gives is ``{"error": {"status": 404, "code": "not_found",
"message": "..."}}`` with that HTTP status; the message is one short line that is safe to show
(never a stack trace, SQL, or a secret). gwui's HTML pages render the same ``ApiError``.
"""

from __future__ import annotations

from typing import Any

from services.common.grpc_errors import short


class ApiError(Exception):
    """An answer other than success, with its HTTP status and a stable machine code."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = short(message)
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"status": self.status, "code": self.code, "message": self.message,
                          **self.extra}}


def bad_request(message: str, **extra: Any) -> ApiError:
    return ApiError(400, "invalid_argument", message, **extra)


def not_found(message: str = "not found") -> ApiError:
    return ApiError(404, "not_found", message)


def unauthenticated(message: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthenticated", message)


def forbidden(message: str = "admin role required") -> ApiError:
    return ApiError(403, "forbidden", message)


# HTTP statuses Werkzeug raises itself (routing, methods, body size), as codes.
HTTP_CODES = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    500: "internal",
    501: "not_implemented",
    502: "bad_gateway",
    503: "unavailable",
}


def code_for_status(status: int) -> str:
    return HTTP_CODES.get(status, "error")
