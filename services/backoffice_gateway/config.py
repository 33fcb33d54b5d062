"""The gateway's settings, read once from the environment (never from a file).

A wrong value fails at start-up with the variable's name (``ConfigError``), not in a request.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass

from services.common.config import (
    ConfigError,
    env_float,
    env_int,
    env_optional,
    env_str,
    redacted_repr,
    sqlalchemy_url,
)
from services.common.config import database_url as suite_database_url

DEFAULT_PORT = 8080
DEFAULT_ADMIN_PORT = 9094
DEFAULT_ADMIN_PORT = 9094


def _env_bool(name: str, default: bool) -> bool:
    raw = env_str(name, "").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway reads from the environment.

    ``secret_key`` signs nothing security-relevant by itself (sessions are server-side rows
    keyed by a random id); Flask still wants one. Without ``GATEWAY_SECRET_KEY`` a random key
    is made per process, which only costs flash messages across restarts.
    """

    database_url: str
    ledger_target: str
    ingest_target: str
    drift_target: str
    secret_key: str = dataclasses.field(default_factory=lambda: secrets.token_hex(32))
    port: int = DEFAULT_PORT
    host: str = "0.0.0.0"
    # /metrics and /healthz, apart from the operators' port (like every service's admin port)
    admin_port: int = DEFAULT_ADMIN_PORT
    public_subscription_enabled: bool = True
    platform_currency: str = "USD"
    session_hours: float = 12.0
    # Login throttling: failures in the window before further attempts are refused (429).
    throttle_account_failures: int = 5
    throttle_ip_failures: int = 20
    throttle_window_seconds: int = 900
    grpc_timeout_seconds: float = 10.0
    banner_cache_seconds: float = 15.0
    dashboard_cache_seconds: float = 30.0
    # Behind a TLS-terminating proxy the request scheme is http; force Secure cookies then.
    force_secure_cookies: bool = False
    workers: int = 2

    __repr__ = redacted_repr

    @classmethod
    def from_env(cls) -> GatewayConfig:
        """The configuration of a running gateway (see README, "Configuration")."""
        db = env_optional("GATEWAY_DATABASE_URL")
        return cls(
            database_url=sqlalchemy_url(db) if db else suite_database_url(),
            ledger_target=env_str(
                "LEDGER_GRPC_ADDR", f"127.0.0.1:{env_int('LEDGER_GRPC_PORT', 50052)}"
            ),
            ingest_target=env_str(
                "INGEST_GRPC_ADDR", f"127.0.0.1:{env_int('INGEST_GRPC_PORT', 50051)}"
            ),
            drift_target=env_str(
                "DRIFT_GRPC_ADDR", f"127.0.0.1:{env_int('DRIFT_GRPC_PORT', 50053)}"
            ),
            secret_key=env_optional("GATEWAY_SECRET_KEY") or secrets.token_hex(32),
            port=env_int("GATEWAY_PORT", DEFAULT_PORT),
            admin_port=env_int("GATEWAY_ADMIN_PORT", 9094),
            host=env_str("GATEWAY_HOST", "0.0.0.0"),
            public_subscription_enabled=_env_bool("PUBLIC_SUBSCRIPTION_ENABLED", True),
            platform_currency=env_str("PLATFORM_CURRENCY", "USD").upper(),
            session_hours=env_float("GATEWAY_SESSION_HOURS", 12.0),
            throttle_account_failures=env_int("GATEWAY_THROTTLE_ACCOUNT_FAILURES", 5),
            throttle_ip_failures=env_int("GATEWAY_THROTTLE_IP_FAILURES", 20),
            throttle_window_seconds=env_int("GATEWAY_THROTTLE_WINDOW_SECONDS", 900),
            grpc_timeout_seconds=env_float("GATEWAY_GRPC_TIMEOUT", 10.0),
            banner_cache_seconds=env_float("GATEWAY_BANNER_CACHE_SECONDS", 15.0),
            dashboard_cache_seconds=env_float("GATEWAY_DASHBOARD_CACHE_SECONDS", 30.0),
            force_secure_cookies=_env_bool("GATEWAY_SECURE_COOKIES", False),
            workers=env_int("GATEWAY_WORKERS", 2),
        )
