"""The ingest service's configuration, read once from the environment at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import (
    ConfigError,
    database_url,
    env_float,
    env_int,
    env_list,
    env_str,
    nats_url,
    redacted_repr,
)
from services.common.stripe_client import StripeSettings


@dataclass(frozen=True, slots=True)
class IngestSettings:
    database_url: str
    nats_url: str
    host: str
    http_port: int
    grpc_port: int
    admin_port: int
    webhook_secrets: list[str]
    signature_tolerance: int
    max_body_bytes: int
    commit_timeout: float
    archive_writers: int
    outbox_sweep_interval: float
    stream_max_age_days: float
    log_level: str
    stripe: StripeSettings
    # Seconds a sender may take to deliver a request's headers, or its body (then 408).
    read_timeout: float = 10.0
    # Bind the ports with SO_REUSEPORT: set in each copy run by INGEST_PROCESSES (or by hand).
    reuse_port: bool = False

    # Secrets (webhook secrets, API keys, database passwords) never appear in a repr.
    __repr__ = redacted_repr

    @classmethod
    def from_env(cls) -> IngestSettings:
        secrets = env_list("STRIPE_WEBHOOK_SECRETS")
        if not secrets:
            raise ConfigError("STRIPE_WEBHOOK_SECRETS must name at least one endpoint secret")
        return cls(
            database_url=database_url(),
            nats_url=nats_url(),
            host=env_str("INGEST_HOST", "0.0.0.0"),
            http_port=env_int("INGEST_HTTP_PORT", 8090),
            grpc_port=env_int("INGEST_GRPC_PORT", 50051),
            admin_port=env_int("INGEST_ADMIN_PORT", 9091),
            webhook_secrets=secrets,
            signature_tolerance=env_int("STRIPE_WEBHOOK_TOLERANCE", 300),
            max_body_bytes=env_int("INGEST_MAX_BODY_BYTES", 1024 * 1024),
            commit_timeout=env_float("INGEST_COMMIT_TIMEOUT", 2.0),
            archive_writers=env_int("INGEST_ARCHIVE_WRITERS", 2),
            outbox_sweep_interval=env_float("INGEST_OUTBOX_SWEEP_INTERVAL", 2.0),
            stream_max_age_days=env_float("NATS_STREAM_MAX_AGE_DAYS", 30.0),
            log_level=env_str("LOG_LEVEL", "INFO"),
            stripe=StripeSettings.from_env(),
            read_timeout=env_float("INGEST_READ_TIMEOUT", 10.0),
            reuse_port=env_str("INGEST_REUSE_PORT", "0") not in ("0", "false", "no", ""),
        )
