"""gRPC clients of the ledger (queries, directory, dead letters), ingest and drift, and the
ONE mapping of gRPC errors to HTTP answers.

Channels come from :func:`services.common.grpc_client.sync_channel`, which attaches
``GRPC_CLIENT_TOKEN``; they are opened lazily per process (gunicorn forks workers, and a gRPC
channel must not cross a fork). Every call goes through :meth:`Backends.call`, which applies
the deadline and turns a ``grpc.RpcError`` into an :class:`ApiError`, so no view can let a
gRPC failure become a 500.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from billing.drift.v1 import drift_pb2_grpc
from billing.ingest.v1 import ingest_pb2_grpc
from billing.ledger.v1 import directory_pb2_grpc, ledger_pb2_grpc

from services.backoffice_gateway.config import GatewayConfig
from services.backoffice_gateway.errors import ApiError
from services.common.grpc_client import sync_channel

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class StatusMapping:
    status: int
    code: str
    # None: pass the upstream details through (they are one safe line by the suite's rule);
    # else this fixed message (the details then speak about OUR credentials or a bug upstream).
    message: str | None = None


# The one mapping. Upstream details are safe to show (services/common/grpc_errors.py keeps
# them to one line without SQL or exception names), except where the failure is about the
# gateway's own configuration (its token) or a bug upstream: then a fixed message.
GRPC_TO_HTTP: dict[grpc.StatusCode, StatusMapping] = {
    grpc.StatusCode.INVALID_ARGUMENT: StatusMapping(400, "invalid_argument"),
    grpc.StatusCode.OUT_OF_RANGE: StatusMapping(400, "invalid_argument"),
    grpc.StatusCode.NOT_FOUND: StatusMapping(404, "not_found"),
    grpc.StatusCode.ALREADY_EXISTS: StatusMapping(409, "already_exists"),
    grpc.StatusCode.FAILED_PRECONDITION: StatusMapping(409, "failed_precondition"),
    grpc.StatusCode.ABORTED: StatusMapping(409, "conflict"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: StatusMapping(429, "too_many_requests"),
    grpc.StatusCode.UNAVAILABLE: StatusMapping(503, "unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: StatusMapping(
        504, "timeout", "the service did not answer in time, retry later"
    ),
    grpc.StatusCode.CANCELLED: StatusMapping(503, "unavailable", "the call was cancelled"),
    grpc.StatusCode.UNIMPLEMENTED: StatusMapping(
        501, "not_implemented", "this operation is not available on the connected service"
    ),
    grpc.StatusCode.UNAUTHENTICATED: StatusMapping(
        502, "bad_gateway", "the gateway's service credentials were refused"
    ),
    grpc.StatusCode.PERMISSION_DENIED: StatusMapping(
        502, "bad_gateway", "the gateway's service credentials lack this permission"
    ),
}
UPSTREAM_ERROR = StatusMapping(502, "bad_gateway", "upstream service error")


def api_error_for(exc: grpc.RpcError, service: str) -> ApiError:
    """The HTTP answer for a failed gRPC call to ``service``."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    mapping = GRPC_TO_HTTP.get(code, UPSTREAM_ERROR)
    details = exc.details() if isinstance(exc, grpc.Call) else None
    if mapping.status >= 500:
        log.warning(
            "backend call failed", extra={"service": service, "grpc_code": code.name}
        )
    message = mapping.message or details or code.name.lower()
    if mapping.code == "unavailable" and mapping.message is None:
        message = f"{service} unavailable, retry later"
    return ApiError(mapping.status, mapping.code, message, service=service)


class Pending(Generic[T]):
    """A call in flight: several independent calls of one page overlap instead of queueing."""

    def __init__(self, service: str, future: Any) -> None:
        self._service = service
        self._future = future

    def result(self) -> T:
        try:
            value: T = self._future.result()
        except grpc.RpcError as exc:
            raise api_error_for(exc, self._service) from None
        return value


class Backends:
    """Lazily opened stubs; ``call`` is the only way views talk to a service."""

    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._pid = -1
        self._channels: dict[str, grpc.Channel] = {}

    def _channel(self, target: str) -> grpc.Channel:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's channels are unusable here
                self._channels = {}
                self._pid = os.getpid()
            channel = self._channels.get(target)
            if channel is None:
                channel = sync_channel(target)
                self._channels[target] = channel
            return channel

    @property
    def ledger(self) -> ledger_pb2_grpc.LedgerServiceStub:
        return ledger_pb2_grpc.LedgerServiceStub(self._channel(self._config.ledger_target))

    @property
    def directory(self) -> directory_pb2_grpc.DirectoryServiceStub:
        return directory_pb2_grpc.DirectoryServiceStub(self._channel(self._config.ledger_target))

    @property
    def ingest(self) -> ingest_pb2_grpc.IngestServiceStub:
        return ingest_pb2_grpc.IngestServiceStub(self._channel(self._config.ingest_target))

    @property
    def drift(self) -> drift_pb2_grpc.DriftServiceStub:
        return drift_pb2_grpc.DriftServiceStub(self._channel(self._config.drift_target))

    @property
    def operations(self) -> drift_pb2_grpc.StripeOperationsStub:
        return drift_pb2_grpc.StripeOperationsStub(self._channel(self._config.drift_target))

    def call(self, service: str, method: Callable[..., T], request: Any) -> T:
        """``method(request)`` with the configured deadline; gRPC errors become ApiError."""
        try:
            return method(request, timeout=self._config.grpc_timeout_seconds)
        except grpc.RpcError as exc:
            raise api_error_for(exc, service) from None

    def start(self, service: str, method: Any, request: Any) -> Pending[Any]:
        """Start ``method(request)`` without waiting (``.result()`` maps errors like call)."""
        return Pending(service, method.future(request, timeout=self._config.grpc_timeout_seconds))

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels = {}
