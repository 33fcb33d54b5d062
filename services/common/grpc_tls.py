"""Optional TLS (and mutual TLS) for the suite's gRPC ports and channels.

Server side (``GrpcServer``): ``GRPC_TLS_CERT`` and ``GRPC_TLS_KEY`` (PEM files) switch the
port to TLS; ``GRPC_TLS_CLIENT_CA`` additionally requires every client to present a
certificate signed by that CA (mutual TLS). Client side (``grpc_client``):
``GRPC_CLIENT_TLS_CA`` (the CA that signed the servers' certificates) switches the channels to
TLS, and ``GRPC_CLIENT_TLS_CERT`` / ``GRPC_CLIENT_TLS_KEY`` present a client certificate.
Bearer tokens still apply on top: TLS says who is on the wire, the token what it may do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc

from services.common.config import ConfigError, env_optional

SERVER_CERT_ENV = "GRPC_TLS_CERT"
SERVER_KEY_ENV = "GRPC_TLS_KEY"
SERVER_CLIENT_CA_ENV = "GRPC_TLS_CLIENT_CA"
CLIENT_CA_ENV = "GRPC_CLIENT_TLS_CA"
CLIENT_CERT_ENV = "GRPC_CLIENT_TLS_CERT"
CLIENT_KEY_ENV = "GRPC_CLIENT_TLS_KEY"


def _read(name: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from exc


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The server's certificate chain and key, and the CA its clients must be signed by."""

    certificate_chain: bytes
    private_key: bytes = field(repr=False)
    client_ca: bytes | None = None

    @classmethod
    def from_env(cls) -> ServerTls | None:
        cert, key = env_optional(SERVER_CERT_ENV), env_optional(SERVER_KEY_ENV)
        client_ca = env_optional(SERVER_CLIENT_CA_ENV)
        if cert is None and key is None:
            if client_ca is not None:
                raise ConfigError(f"{SERVER_CLIENT_CA_ENV} needs {SERVER_CERT_ENV} and _KEY")
            return None
        if cert is None or key is None:
            raise ConfigError(f"set both {SERVER_CERT_ENV} and {SERVER_KEY_ENV}, or neither")
        return cls(
            certificate_chain=_read(SERVER_CERT_ENV, cert),
            private_key=_read(SERVER_KEY_ENV, key),
            client_ca=_read(SERVER_CLIENT_CA_ENV, client_ca) if client_ca else None,
        )

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


def client_tls_from_env() -> grpc.ChannelCredentials | None:
    """Channel credentials from ``GRPC_CLIENT_TLS_*``, or None for a plaintext channel."""
    ca = env_optional(CLIENT_CA_ENV)
    cert, key = env_optional(CLIENT_CERT_ENV), env_optional(CLIENT_KEY_ENV)
    if ca is None:
        if cert is not None or key is not None:
            raise ConfigError(f"{CLIENT_CERT_ENV}/{CLIENT_KEY_ENV} need {CLIENT_CA_ENV}")
        return None
    if (cert is None) != (key is None):
        raise ConfigError(f"set both {CLIENT_CERT_ENV} and {CLIENT_KEY_ENV}, or neither")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(CLIENT_CA_ENV, ca),
        private_key=_read(CLIENT_KEY_ENV, key) if key else None,
        certificate_chain=_read(CLIENT_CERT_ENV, cert) if cert else None,
    )
