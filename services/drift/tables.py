"""The ``drift`` schema as typed SQLAlchemy 2.0 tables (migration 0008 creates them).

Drift owns these tables and nothing else: the ledger and the ingest archive are reached only
through their gRPC services.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Boolean, DateTime, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "drift"

KINDS = (
    "MissingEvent",
    "MissingHistoricalEvent",
    "MissingHistoricalEventUnrecoverable",
    "UnclassifiedStripeEvent",
    "UnsupportedStripeApiVersion",
    "StripeEventPayloadDivergence",
    "SubscriptionStateMismatch",
    "ExtraEvent",
)
SEVERITIES = ("Warning", "Critical")


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Run(Base):
    """One drift pass (scheduled, manual, sync or import), its counters updated while it runs."""

    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    scope: Mapped[str] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    operator: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    subscriptions_checked: Mapped[int] = mapped_column(BigInteger, default=0)
    subscriptions_total: Mapped[int] = mapped_column(BigInteger, default=0)
    discrepancies_found: Mapped[int] = mapped_column(BigInteger, default=0)
    events_recovered: Mapped[int] = mapped_column(BigInteger, default=0)
    stripe_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    error_message: Mapped[str | None] = mapped_column(Text)


class Discrepancy(Base):
    """A finding; open while ``resolved_at`` is NULL, unique per ``fingerprint`` while open."""

    __tablename__ = "discrepancies"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(Text)
    account_id: Mapped[str | None] = mapped_column(Text)
    subscription_id: Mapped[str | None] = mapped_column(Text)
    stripe_event_id: Mapped[str | None] = mapped_column(Text)
    stripe_object_id: Mapped[str | None] = mapped_column(Text)
    field: Mapped[str | None] = mapped_column(Text)
    ledger_value: Mapped[str | None] = mapped_column(Text)
    stripe_value: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(Text)
    acknowledgement_note: Mapped[str | None] = mapped_column(Text)


class SubscriptionCheck(Base):
    """Per subscription: ``has_drift_detected`` and ``drift_checked_at``."""

    __tablename__ = "subscription_checks"
    subscription_id: Mapped[str] = mapped_column(Text, primary_key=True)
    account_id: Mapped[str | None] = mapped_column(Text)
    stripe_customer_id: Mapped[str | None] = mapped_column(Text)
    has_drift_detected: Mapped[bool] = mapped_column(Boolean, default=False)
    drift_checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_run_id: Mapped[str | None] = mapped_column(Text)


class AccountState(Base):
    """Per account: the banner's flags (drift detected, synced), read without paging."""

    __tablename__ = "accounts"
    account_id: Mapped[str] = mapped_column(Text, primary_key=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(Text)
    has_drift_detected: Mapped[bool] = mapped_column(Boolean, default=False)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(Text)
    acknowledgement_note: Mapped[str | None] = mapped_column(Text)


class Operation(Base):
    """The audit row of one operator Stripe action, success or failure."""

    __tablename__ = "operations"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    operation: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    operator: Mapped[str] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    outcome: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    stripe_object_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class HighWaterMark(Base):
    """The newest Stripe ``created`` an incremental pass has read up to."""

    __tablename__ = "high_water_marks"
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    stripe_created: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RecoveryCutoff(Base):
    """A disaster-recovery cutoff (or first-install baseline) set for one subscription."""

    __tablename__ = "recovery_cutoffs"
    subscription_id: Mapped[str] = mapped_column(Text, primary_key=True)
    cutoff: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    snapshot_id: Mapped[str] = mapped_column(Text)
    operator: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


runs = cast(Table, Run.__table__)
discrepancies = cast(Table, Discrepancy.__table__)
subscription_checks = cast(Table, SubscriptionCheck.__table__)
accounts = cast(Table, AccountState.__table__)
operations = cast(Table, Operation.__table__)
high_water_marks = cast(Table, HighWaterMark.__table__)
recovery_cutoffs = cast(Table, RecoveryCutoff.__table__)
