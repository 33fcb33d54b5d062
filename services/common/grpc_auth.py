"""Who may call what: bearer tokens with a read scope and an admin scope, checked by one
server interceptor that every :class:`~services.common.grpc_server.GrpcServer` installs.

- A call carries ``authorization: Bearer <token>`` (see :mod:`services.common.grpc_client`).
- ``GRPC_ADMIN_TOKENS`` and ``GRPC_READ_TOKENS`` are comma-separated lists, so a token can be
  rotated by configuring the old and the new one for a while. An admin token may call every
  method; a read token only the methods a service declared read-only.
- Safe by default: a method is admin-only unless its service declared it read-only
  (``GrpcServer.add(..., read_only_methods=...)``), so a new mutating RPC can never be open by
  omission. The health service and server reflection need no token.
- No token configured is a configuration error (the service refuses to start) unless
  ``GRPC_AUTH=disabled`` says explicitly that the port is protected some other way (a
  loopback-only development port, a mesh doing mTLS and authorisation).

Missing or unknown token: ``UNAUTHENTICATED``; a read token on an admin method:
``PERMISSION_DENIED``. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import grpc
from prometheus_client import Counter

from services.common.config import ConfigError, env_list, env_str
from services.common.grpc_client import AUTHORIZATION_KEY

log = logging.getLogger(__name__)

AUTH_MODE_ENV = "GRPC_AUTH"
ADMIN_TOKENS_ENV = "GRPC_ADMIN_TOKENS"
READ_TOKENS_ENV = "GRPC_READ_TOKENS"
MIN_TOKEN_LENGTH = 16

# Methods under these prefixes need no credentials (probes and tooling must reach them).
OPEN_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

DENIED = Counter("grpc_auth_denied_total", "gRPC calls refused by the auth check", ["reason"])


class Scope(StrEnum):
    """What a token may do."""

    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class GrpcAuth:
    """The configured tokens (never shown by ``repr``) or the explicit opt-out."""

    enabled: bool
    admin_tokens: tuple[bytes, ...] = field(default=(), repr=False)
    read_tokens: tuple[bytes, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls) -> GrpcAuth:
        mode = env_str(AUTH_MODE_ENV, "tokens")
        if mode == "disabled":
            return cls(enabled=False)
        if mode != "tokens":
            raise ConfigError(f"{AUTH_MODE_ENV} must be 'tokens' or 'disabled', got {mode!r}")
        return cls.with_tokens(env_list(ADMIN_TOKENS_ENV), env_list(READ_TOKENS_ENV))

    @classmethod
    def with_tokens(cls, admin: Collection[str], read: Collection[str] = ()) -> GrpcAuth:
        if not admin:
            raise ConfigError(
                f"{ADMIN_TOKENS_ENV} must name at least one token (or set"
                f" {AUTH_MODE_ENV}=disabled to run the gRPC port without credentials)"
            )
        for name, tokens in ((ADMIN_TOKENS_ENV, admin), (READ_TOKENS_ENV, read)):
            if any(len(token) < MIN_TOKEN_LENGTH for token in tokens):
                raise ConfigError(f"every token of {name} needs {MIN_TOKEN_LENGTH}+ characters")
        return cls(
            enabled=True,
            admin_tokens=tuple(t.encode() for t in admin),
            read_tokens=tuple(t.encode() for t in read),
        )

    def scope_of(self, authorization: str | None) -> Scope | None:
        """The scope the ``authorization`` header grants, or None (missing or unknown)."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        presented = authorization[len("Bearer ") :].strip().encode("utf-8", "replace")
        # Compare against every token, without stopping at the first match, so the time
        # taken says nothing about which token (or how much of one) matched.
        is_admin = _matches_any(presented, self.admin_tokens)
        is_read = _matches_any(presented, self.read_tokens)
        if is_admin:
            return Scope.ADMIN
        if is_read:
            return Scope.READ
        return None


def _matches_any(presented: bytes, tokens: tuple[bytes, ...]) -> bool:
    found = False
    for token in tokens:
        found |= hmac.compare_digest(presented, token)
    return found


def _abort_behaviour(code: grpc.StatusCode, message: str) -> Callable[..., Awaitable[Any]]:
    async def behaviour(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    return behaviour


def _refusal(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> Any:
    """A handler of the same kind as ``handler`` that only refuses the call."""
    behaviour = _abort_behaviour(code, message)
    kinds = (
        (handler.unary_unary, grpc.unary_unary_rpc_method_handler),
        (handler.unary_stream, grpc.unary_stream_rpc_method_handler),
        (handler.stream_unary, grpc.stream_unary_rpc_method_handler),
        (handler.stream_stream, grpc.stream_stream_rpc_method_handler),
    )
    for present, make in kinds:
        if present is not None:
            return make(
                behaviour,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    raise ValueError("method handler of unknown kind")


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks the bearer token of every call against the method's required scope.

    ``read_only`` holds full method names (``/pkg.Service/Method``); it is the server's live
    set, so services registered after the interceptor was built are covered too.
    """

    def __init__(self, auth: GrpcAuth, read_only: Collection[str]) -> None:
        self._auth = auth
        self._read_only = read_only

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self._auth.enabled or method.startswith(OPEN_PREFIXES):
            return handler
        metadata: Mapping[str, Any] = dict(handler_call_details.invocation_metadata or ())
        header = metadata.get(AUTHORIZATION_KEY)
        scope = self._auth.scope_of(header if isinstance(header, str) else None)
        if scope is None:
            DENIED.labels("unauthenticated").inc()
            return _refusal(
                handler,
                grpc.StatusCode.UNAUTHENTICATED,
                "a valid bearer token is required (metadata 'authorization: Bearer <token>')",
            )
        if scope is Scope.READ and method not in self._read_only:
            DENIED.labels("read_scope").inc()
            return _refusal(
                handler, grpc.StatusCode.PERMISSION_DENIED, "this method needs an admin token"
            )
        return handler


__all__ = ["AuthInterceptor", "GrpcAuth", "Scope"]
