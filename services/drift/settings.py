"""The drift service's configuration, read once from the environment at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import (
    ConfigError,
    database_url,
    env_float,
    env_int,
    env_optional,
    env_str,
    nats_url,
    redacted_repr,
)
from services.common.stripe_client import StripeSettings


@dataclass(frozen=True, slots=True)
class DriftSettings:
    database_url: str
    nats_url: str
    ingest_grpc_addr: str
    ledger_grpc_addr: str
    host: str
    grpc_port: int
    admin_port: int
    #: Seconds between scheduled full passes; 0 disables the worker.
    interval: float
    #: Whether Stripe is configured at all (STRIPE_API_KEY set): the worker skips otherwise.
    stripe_configured: bool
    stripe: StripeSettings
    #: One token bucket for every Stripe call of the process (live Stripe allows 100/s).
    max_rps: float
    #: Concurrent Stripe requests in flight (the bucket still bounds the rate).
    concurrency: int
    #: Seconds to let in-flight events reach the ledger before a mismatch is confirmed.
    settle_seconds: float
    log_level: str

    __repr__ = redacted_repr

    @classmethod
    def from_env(cls) -> DriftSettings:
        max_rps = env_float("STRIPE_MAX_RPS", 25.0)
        if max_rps <= 0:
            raise ConfigError("STRIPE_MAX_RPS must be positive")
        concurrency = env_int("DRIFT_CONCURRENCY", 8)
        if concurrency < 1:
            raise ConfigError("DRIFT_CONCURRENCY must be at least 1")
        ingest_port = env_int("INGEST_GRPC_PORT", 50051)
        ledger_port = env_int("LEDGER_GRPC_PORT", 50052)
        return cls(
            database_url=database_url(),
            nats_url=nats_url(),
            ingest_grpc_addr=env_str("INGEST_GRPC_ADDR", f"127.0.0.1:{ingest_port}"),
            ledger_grpc_addr=env_str("LEDGER_GRPC_ADDR", f"127.0.0.1:{ledger_port}"),
            host=env_str("DRIFT_HOST", "0.0.0.0"),
            grpc_port=env_int("DRIFT_GRPC_PORT", 50053),
            admin_port=env_int("DRIFT_ADMIN_PORT", 9093),
            interval=env_float("DRIFT_INTERVAL", 3600.0),
            stripe_configured=env_optional("STRIPE_API_KEY") is not None,
            stripe=StripeSettings.from_env(),
            max_rps=max_rps,
            concurrency=concurrency,
            settle_seconds=env_float("DRIFT_SETTLE_SECONDS", 2.0),
            log_level=env_str("LOG_LEVEL", "INFO"),
        )
