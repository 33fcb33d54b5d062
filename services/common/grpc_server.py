"""An asyncio gRPC server with the standard health service, server reflection and the
suite's credentials check.

Every service registers its own servicers, then calls :func:`serve_forever`'s parts through
:class:`GrpcServer`; shutdown flips health to NOT_SERVING first so load balancers stop
routing, then lets in-flight calls finish within a grace period.

Credentials (see :mod:`services.common.grpc_auth`): every method needs an admin token unless
its service declares it read-only when it is added (``read_only_methods``); health and
reflection stay open. Errors escaping a handler are mapped to status codes in one place
(:mod:`services.common.grpc_errors`). TLS / mutual TLS come from ``GRPC_TLS_*`` (see
:mod:`services.common.grpc_tls`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.grpc_auth import AuthInterceptor, GrpcAuth
from services.common.grpc_errors import ErrorMappingInterceptor
from services.common.grpc_tls import ServerTls

log = logging.getLogger(__name__)


class GrpcServer:
    """Wraps ``grpc.aio.Server`` with health, reflection and the auth interceptor wired in.

    ``auth`` and ``tls`` default to the environment (``GRPC_AUTH``, ``GRPC_ADMIN_TOKENS``,
    ``GRPC_READ_TOKENS``, ``GRPC_TLS_*``); with no admin token and no explicit
    ``GRPC_AUTH=disabled`` the constructor raises ``ConfigError`` (the service refuses to start).
    """

    def __init__(
        self,
        port: int,
        host: str = "0.0.0.0",
        *,
        auth: GrpcAuth | None = None,
        tls: ServerTls | None = None,
        reuse_port: bool = False,
    ) -> None:
        """``reuse_port``: share the port with other processes of the SAME service
        (``SO_REUSEPORT``, the scale-out copies of services/common/process_group.py). gRPC
        turns it on by default, which let a second service started on an occupied port
        (a misconfiguration, or two benches' free ports colliding) bind it silently and take
        a share of its calls, answering them UNIMPLEMENTED; off, that start fails loudly."""
        self.auth = auth if auth is not None else GrpcAuth.from_env()
        tls = tls if tls is not None else ServerTls.from_env()
        self.read_only_methods: set[str] = set()
        self.server = grpc.aio.server(
            interceptors=[
                AuthInterceptor(self.auth, self.read_only_methods),
                ErrorMappingInterceptor(),
            ],
            options=[("grpc.so_reuseport", 1 if reuse_port else 0)],
        )
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._service_names: list[str] = [health.SERVICE_NAME, reflection.SERVICE_NAME]
        address = f"{host}:{port}"
        self.tls = tls is not None
        if tls is not None:
            self.port = self.server.add_secure_port(address, tls.credentials())
        else:
            self.port = self.server.add_insecure_port(address)

    def add(
        self,
        register: Callable[[object, grpc.aio.Server], None],
        servicer: object,
        full_names: Iterable[str],
        read_only_methods: Iterable[str] = (),
    ) -> None:
        """Register ``servicer`` with its generated ``add_*_to_server`` function.

        ``read_only_methods``: short method names (``"GetEvent"``) of the services in
        ``full_names`` that a read token may call; every other method needs an admin token.
        """
        names = list(full_names)
        register(servicer, self.server)
        self._service_names.extend(names)
        read_only = list(read_only_methods)
        self.read_only_methods.update(f"/{n}/{m}" for n in names for m in read_only)

    async def start(self) -> None:
        reflection.enable_server_reflection(self._service_names, self.server)
        await self.server.start()
        for name in [*self._service_names, ""]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if not self.auth.enabled:
            log.warning(
                "gRPC credentials disabled (GRPC_AUTH=disabled): anyone reaching the port may"
                " call every method",
                extra={"port": self.port},
            )

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
