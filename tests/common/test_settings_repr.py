"""No settings object shows a secret when printed, logged or formatted."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from pathlib import Path

import pytest

import services
from services.common.grpc_auth import GrpcAuth
from services.common.grpc_tls import ServerTls
from services.common.stripe_client import StripeSettings
from services.stripe_simulator.server import ServerSettings

SECRETS = {
    "DATABASE_URL": "postgresql://billing:pg-pass-SENTINEL-1@db:5432/billing",
    "NATS_URL": "nats://natsuser:nats-pass-SENTINEL-2@nats:4222",
    "STRIPE_WEBHOOK_SECRETS": "whsec_SENTINEL-3,whsec_SENTINEL-4",
    "STRIPE_API_KEY": "sk_live_SENTINEL-5",
    "GRPC_ADMIN_TOKENS": "admin-token-SENTINEL-6",
    "GRPC_READ_TOKENS": "read-token-SENTINEL-7",
    "GRPC_CLIENT_TOKEN": "client-token-SENTINEL-8",
}
SENTINELS = [
    "pg-pass-SENTINEL-1",
    "nats-pass-SENTINEL-2",
    "SENTINEL-3",
    "SENTINEL-4",
    "SENTINEL-5",
    "SENTINEL-6",
    "SENTINEL-7",
    "SENTINEL-8",
    "PRIVATE-KEY-SENTINEL-9",
]


def settings_classes() -> list[type]:
    """Every ``services.<x>.settings`` class with ``from_env``: new services are covered too."""
    found: list[type] = []
    for module_info in pkgutil.iter_modules(services.__path__):
        try:
            module = importlib.import_module(f"services.{module_info.name}.settings")
        except ModuleNotFoundError:
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and hasattr(cls, "from_env"):
                found.append(cls)
    return found


def formatted(obj: object) -> str:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "%s %r", (obj, obj), None)
    return "\n".join([repr(obj), str(obj), f"{obj}", f"{obj!r}", record.getMessage()])


def test_every_settings_object_hides_its_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    classes = settings_classes()
    names = {cls.__name__ for cls in classes}
    assert {"IngestSettings", "LedgerSettings"} <= names
    key = tmp_path / "server.key"
    key.write_text("PRIVATE-KEY-SENTINEL-9")
    cert = tmp_path / "server.pem"
    cert.write_text("certificate")
    monkeypatch.setenv("GRPC_TLS_CERT", str(cert))
    monkeypatch.setenv("GRPC_TLS_KEY", str(key))
    objects: list[object] = [cls.from_env() for cls in classes]  # type: ignore[attr-defined]
    objects += [
        StripeSettings.from_env(),
        GrpcAuth.from_env(),
        ServerTls.from_env(),
        ServerSettings(api_key="sk_test_SENTINEL-5", webhook_secret="whsec_SENTINEL-3"),
    ]
    for obj in objects:
        text = formatted(obj)
        leaked = [s for s in SENTINELS if s in text]
        assert not leaked, (type(obj).__name__, leaked, text)
    # Still useful: the non-secret parts are shown.
    ingest = next(o for o in objects if type(o).__name__ == "IngestSettings")
    assert "db:5432/billing" in repr(ingest) and "http_port=" in repr(ingest)
