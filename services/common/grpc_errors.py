"""The one mapping from errors to gRPC status codes, shared by every servicer.

Servicers raise :class:`ServiceError` subclasses (``InvalidArgument``, ``NotFound`` ...) whose
message is safe to show; anything else that escapes a handler is mapped by
:func:`status_for`:

- a value the database refuses (NUL in text, a number or date out of range: SQLSTATE class 22)
  is ``INVALID_ARGUMENT`` (every statement is parametrised, so the value came from the request);
- the database being away is ``UNAVAILABLE`` (the caller retries);
- anything else is a bug: logged with its traceback, answered ``INTERNAL`` "internal error".

Details are one short line: never SQL text, an exception class, or the request echoed back at
length. :class:`ErrorMappingInterceptor` (installed by ``GrpcServer``) applies the mapping to
every method of every service, streaming ones included, so a servicer cannot forget it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, NoReturn, TypeVar

import grpc

from services.common.db_errors import is_unavailable, refused_value

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_DETAIL = 200


class ServiceError(Exception):
    """An error whose message is safe to show to the caller; ``code`` is its status."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL


class InvalidArgument(ServiceError):
    """The request itself is wrong; retrying it unchanged cannot succeed."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ServiceError):
    """A dependency (database, broker, Stripe, another service) is away: retry later."""

    code = grpc.StatusCode.UNAVAILABLE


REFUSED_VALUE = "a value of the request is not acceptable (NUL character, or out of range)"
DATABASE_AWAY = "database unavailable, retry later"


def short(text: str, limit: int = MAX_DETAIL) -> str:
    """One printable line of at most ``limit`` characters."""
    line = "".join(ch if ch.isprintable() else "?" for ch in text.replace("\n", " "))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status and details for ``exc``, or None when it is not an expected error (a bug)."""
    if isinstance(exc, ServiceError):
        return exc.code, short(str(exc))
    if refused_value(exc):
        return grpc.StatusCode.INVALID_ARGUMENT, REFUSED_VALUE
    if is_unavailable(exc):
        return grpc.StatusCode.UNAVAILABLE, DATABASE_AWAY
    return None


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, text: str) -> NoReturn:
    """``context.abort`` with the details shortened."""
    await context.abort(code, short(text))
    raise AssertionError("unreachable")  # abort raises


async def _abort_for(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> NoReturn:
    mapped = status_for(exc)
    if mapped is None:
        log.error("unexpected error in %s", method, exc_info=exc)
        await abort(context, grpc.StatusCode.INTERNAL, "internal error")
    code, details = mapped
    if code is grpc.StatusCode.UNAVAILABLE:
        log.warning("rpc unavailable", extra={"method": method, "error": short(repr(exc))})
    await abort(context, code, details)


async def run_rpc(context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` and map what it raises (for servicers that wrap their body)."""
    try:
        return await work()
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        await _abort_for(context, "rpc", exc)


def _wrap_unary(method: str, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_for(context, method, exc)

    return wrapped


def _wrap_stream(method: str, behaviour: Callable[..., Any]) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behaviour):
        return _wrap_unary(method, behaviour)  # writes with context.write, returns nothing

    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for message in behaviour(request, context):
                yield message
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_for(context, method, exc)

    return wrapped


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Applies :func:`status_for` to whatever escapes any handler."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        common = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(method, handler.unary_unary), **common
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(method, handler.unary_stream), **common
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(method, handler.stream_unary), **common
            )
        assert handler.stream_stream is not None  # the fourth and last kind
        return grpc.stream_stream_rpc_method_handler(
            _wrap_stream(method, handler.stream_stream), **common
        )


__all__ = [
    "AlreadyExists",
    "ErrorMappingInterceptor",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "ServiceError",
    "Unavailable",
    "abort",
    "run_rpc",
    "short",
    "status_for",
]
