"""An asyncio gRPC server with the standard health service and server reflection.

Every service registers its own servicers, then calls :func:`serve_forever`'s parts through
:class:`GrpcServer`; shutdown flips health to NOT_SERVING first so load balancers stop
routing, then lets in-flight calls finish within a grace period.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection


class GrpcServer:
    """Wraps ``grpc.aio.Server`` with health and reflection wired in."""

    def __init__(self, port: int, host: str = "0.0.0.0") -> None:
        self.server = grpc.aio.server()
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._service_names: list[str] = [health.SERVICE_NAME, reflection.SERVICE_NAME]
        self.port = self.server.add_insecure_port(f"{host}:{port}")

    def add(
        self,
        register: Callable[[object, grpc.aio.Server], None],
        servicer: object,
        full_names: Iterable[str],
    ) -> None:
        """Register ``servicer`` with its generated ``add_*_to_server`` function."""
        register(servicer, self.server)
        self._service_names.extend(full_names)

    async def start(self) -> None:
        reflection.enable_server_reflection(self._service_names, self.server)
        await self.server.start()
        for name in [*self._service_names, ""]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
