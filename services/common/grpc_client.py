"""Channels from one service (or the back-office) to another, carrying the suite's credentials.

Every internal gRPC client goes through :func:`aio_channel` or :func:`sync_channel`, so the
credentials are attached in one place: when ``GRPC_CLIENT_TOKEN`` is set, each call carries the
metadata ``authorization: Bearer <token>`` that the servers' auth interceptor checks. Without
it, calls carry no credentials (a server that requires them answers ``UNAUTHENTICATED``).

gRPC refuses call credentials on plaintext channels, and the suite's channels are plaintext
unless mTLS is configured, so the token travels as metadata added by client interceptors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from services.common.config import env_optional
from services.common.grpc_tls import client_tls_from_env

CLIENT_TOKEN_ENV = "GRPC_CLIENT_TOKEN"  # noqa: S105 - the variable's name, not a secret
AUTHORIZATION_KEY = "authorization"

ChannelOptions = Sequence[tuple[str, Any]]


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """The call metadata that carries ``token`` (the single definition of the header's form)."""
    return ((AUTHORIZATION_KEY, f"Bearer {token}"),)


def _with_token(call_details: Any, metadata: tuple[tuple[str, str], ...]) -> Any:
    existing = tuple(call_details.metadata or ())
    return call_details._replace(metadata=existing + metadata)


class _AioBearer:
    """Adds the bearer token to asyncio calls (one subclass per call kind, see below)."""

    def __init__(self, token: str) -> None:
        self._metadata = bearer_metadata(token)

    def _details(self, call_details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*tuple(call_details.metadata or ()), *self._metadata)
        return grpc.aio.ClientCallDetails(
            call_details.method,
            call_details.timeout,
            metadata,
            call_details.credentials,
            call_details.wait_for_ready,
        )


# grpc.aio files each interceptor under the FIRST call kind it implements, so one class per
# kind: a single class implementing all four would only ever see unary-unary calls.
class _AioBearerUnaryUnary(_AioBearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request)


class _AioBearerUnaryStream(_AioBearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request)


class _AioBearerStreamUnary(_AioBearer, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request_iterator)


class _AioBearerStreamStream(_AioBearer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return await continuation(self._details(client_call_details), request_iterator)


def _aio_interceptors(token: str) -> list[_AioBearer]:
    kinds = (_AioBearerUnaryUnary, _AioBearerUnaryStream, _AioBearerStreamUnary)
    return [kind(token) for kind in (*kinds, _AioBearerStreamStream)]


class _SyncBearer(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the bearer token to every blocking call."""

    def __init__(self, token: str) -> None:
        self._metadata = bearer_metadata(token)

    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(_with_token(client_call_details, self._metadata), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(_with_token(client_call_details, self._metadata), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(_with_token(client_call_details, self._metadata), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(_with_token(client_call_details, self._metadata), request_iterator)


def aio_channel(
    address: str,
    options: ChannelOptions = (),
    token: str | None = None,
    tls: grpc.ChannelCredentials | None = None,
) -> grpc.aio.Channel:
    """An asyncio channel to ``address`` with the suite's credentials (see module docstring).

    ``tls`` None: TLS as configured by ``GRPC_CLIENT_TLS_*`` (plaintext when unset).
    """
    token = token if token is not None else env_optional(CLIENT_TOKEN_ENV)
    tls = tls if tls is not None else client_tls_from_env()
    interceptors: Any = _aio_interceptors(token) if token else None
    if tls is not None:
        return grpc.aio.secure_channel(
            address, tls, options=list(options), interceptors=interceptors
        )
    return grpc.aio.insecure_channel(address, options=list(options), interceptors=interceptors)


def sync_channel(
    address: str,
    options: ChannelOptions = (),
    token: str | None = None,
    tls: grpc.ChannelCredentials | None = None,
) -> grpc.Channel:
    """A blocking channel (for Flask and CLIs), credentials as for :func:`aio_channel`."""
    token = token if token is not None else env_optional(CLIENT_TOKEN_ENV)
    tls = tls if tls is not None else client_tls_from_env()
    channel = (
        grpc.secure_channel(address, tls, options=list(options))
        if tls is not None
        else grpc.insecure_channel(address, options=list(options))
    )
    if token:
        return grpc.intercept_channel(channel, _SyncBearer(token))
    return channel
