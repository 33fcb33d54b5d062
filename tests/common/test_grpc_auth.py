"""The server side of gRPC credentials: configuration rules, open health, mutual TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.config import ConfigError
from services.common.grpc_auth import GrpcAuth, Scope
from services.common.grpc_client import aio_channel
from services.common.grpc_server import GrpcServer
from services.common.grpc_tls import ServerTls

ADMIN = "admin-token-0123456789abcdef"
OLD_ADMIN = "old-admin-token-0123456789"
READ = "read-token-0123456789abcdef"


def test_no_token_refuses_to_start_unless_disabled_explicitly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GRPC_ADMIN_TOKENS", raising=False)
    monkeypatch.delenv("GRPC_AUTH", raising=False)
    with pytest.raises(ConfigError, match="GRPC_ADMIN_TOKENS"):
        GrpcServer(0, "127.0.0.1")
    monkeypatch.setenv("GRPC_AUTH", "disabled")
    assert GrpcAuth.from_env().enabled is False
    monkeypatch.setenv("GRPC_AUTH", "off")
    with pytest.raises(ConfigError, match="GRPC_AUTH"):
        GrpcAuth.from_env()


def test_short_tokens_are_refused() -> None:
    with pytest.raises(ConfigError, match="16"):
        GrpcAuth.with_tokens(["short"])


def test_rotation_scopes_and_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_ADMIN_TOKENS", f"{ADMIN}, {OLD_ADMIN}")
    monkeypatch.setenv("GRPC_READ_TOKENS", READ)
    monkeypatch.delenv("GRPC_AUTH", raising=False)
    auth = GrpcAuth.from_env()
    assert auth.scope_of(f"Bearer {ADMIN}") is Scope.ADMIN
    assert auth.scope_of(f"Bearer {OLD_ADMIN}") is Scope.ADMIN
    assert auth.scope_of(f"Bearer {READ}") is Scope.READ
    for bad in (None, "", ADMIN, f"Basic {ADMIN}", f"Bearer {ADMIN}x", "Bearer é\u0000"):
        assert auth.scope_of(bad) is None
    shown = repr(auth) + str(auth)
    assert ADMIN not in shown and READ not in shown and OLD_ADMIN not in shown


class _Ingest(ingest_pb2_grpc.IngestServiceServicer):
    async def GetEvent(self, request, context):  # type: ignore[no-untyped-def]
        return ingest_pb2.ArchivedEvent(event_id=request.event_id)

    async def StreamArchive(self, request, context):  # type: ignore[no-untyped-def]
        yield ingest_pb2.ArchivedEvent(event_id="evt_1")

    async def RepublishEvent(self, request, context):  # type: ignore[no-untyped-def]
        return ingest_pb2.RepublishEventResponse()


async def _serve(tls: ServerTls | None = None) -> GrpcServer:
    server = GrpcServer(0, "127.0.0.1", auth=GrpcAuth.with_tokens([ADMIN], [READ]), tls=tls)
    server.add(
        ingest_pb2_grpc.add_IngestServiceServicer_to_server,  # type: ignore[arg-type]
        _Ingest(),  # type: ignore[abstract]
        ["billing.ingest.v1.IngestService"],
        read_only_methods={"GetEvent", "StreamArchive"},
    )
    await server.start()
    return server


@pytest.fixture
async def plain_server() -> AsyncIterator[GrpcServer]:
    server = await _serve()
    yield server
    await server.stop(0)


async def _codes(channel: grpc.aio.Channel) -> tuple[grpc.StatusCode, ...]:
    stub = ingest_pb2_grpc.IngestServiceStub(channel)
    results: list[grpc.StatusCode] = []
    for call in (
        lambda: stub.GetEvent(ingest_pb2.GetEventRequest(event_id="evt_1")),
        lambda: _drain(stub.StreamArchive(ingest_pb2.StreamArchiveRequest())),
        lambda: stub.RepublishEvent(ingest_pb2.RepublishEventRequest(event_id="evt_1")),
    ):
        try:
            await call()
        except grpc.aio.AioRpcError as exc:
            results.append(exc.code())
        else:
            results.append(grpc.StatusCode.OK)
    return tuple(results)


async def _drain(call: grpc.aio.UnaryStreamCall) -> None:  # type: ignore[type-arg]
    async for _ in call:
        pass


async def test_scopes_on_unary_and_streaming_methods(plain_server: GrpcServer) -> None:
    address = f"127.0.0.1:{plain_server.port}"
    ok, unauth, denied = (
        grpc.StatusCode.OK,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    )
    async with aio_channel(address, token="") as channel:
        assert await _codes(channel) == (unauth, unauth, unauth)
        # Health and reflection stay open.
        answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    async with aio_channel(address, token=READ) as channel:
        assert await _codes(channel) == (ok, ok, denied)
    async with aio_channel(address, token=ADMIN) as channel:
        assert await _codes(channel) == (ok, ok, ok)


@dataclass
class _Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signer = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture
def pki(tmp_path: Path) -> _Pki:
    """A throw-away CA with one server and one client certificate."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("test-ca", ca_key, None, ca=True)
    files: dict[str, bytes] = {"ca.pem": ca_cert.public_bytes(serialization.Encoding.PEM)}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(f"{role}.test", key, (ca_cert.subject, ca_key), server=role == "server")
        files[f"{role}.pem"] = cert.public_bytes(serialization.Encoding.PEM)
        files[f"{role}.key"] = _key_pem(key)
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    return _Pki(
        tmp_path / "ca.pem",
        tmp_path / "server.pem",
        tmp_path / "server.key",
        tmp_path / "client.pem",
        tmp_path / "client.key",
    )


async def test_mutual_tls_from_environment(pki: _Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_TLS_CERT", str(pki.server_cert))
    monkeypatch.setenv("GRPC_TLS_KEY", str(pki.server_key))
    monkeypatch.setenv("GRPC_TLS_CLIENT_CA", str(pki.ca))
    server = await _serve(ServerTls.from_env())
    address = f"127.0.0.1:{server.port}"
    try:
        assert server.tls
        # A client with the CA and its certificate (from the environment) gets in ...
        monkeypatch.setenv("GRPC_CLIENT_TLS_CA", str(pki.ca))
        monkeypatch.setenv("GRPC_CLIENT_TLS_CERT", str(pki.client_cert))
        monkeypatch.setenv("GRPC_CLIENT_TLS_KEY", str(pki.client_key))
        async with aio_channel(address, token=READ) as channel:
            assert await _codes(channel) == (
                grpc.StatusCode.OK,
                grpc.StatusCode.OK,
                grpc.StatusCode.PERMISSION_DENIED,  # TLS says who, the token what
            )
        # ... one without a client certificate, or in plaintext, does not.
        without_cert = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
        async with aio_channel(address, token=ADMIN, tls=without_cert) as channel:
            codes = await _codes(channel)
            assert codes == (grpc.StatusCode.UNAVAILABLE,) * 3
        monkeypatch.delenv("GRPC_CLIENT_TLS_CA")
        monkeypatch.delenv("GRPC_CLIENT_TLS_CERT")
        monkeypatch.delenv("GRPC_CLIENT_TLS_KEY")
        async with aio_channel(address, token=ADMIN) as channel:
            assert await _codes(channel) == (grpc.StatusCode.UNAVAILABLE,) * 3
    finally:
        await server.stop(0)


def test_tls_configuration_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRPC_TLS_CERT", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="GRPC_TLS_KEY"):
        ServerTls.from_env()
    monkeypatch.setenv("GRPC_TLS_KEY", str(tmp_path / "missing.key"))
    with pytest.raises(ConfigError, match="cannot read"):
        ServerTls.from_env()
