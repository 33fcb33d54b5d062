"""The ``ingest`` schema: the append-only archive of Stripe events and the divergence log.

The archive is the source of truth of the whole suite and also the publishing outbox:
``published_at IS NULL`` rows are what JetStream has not acknowledged yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "ingest"
RECOVERY_SOURCES = ("webhook", "events_list")


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class StripeEvent(Base):
    """One Stripe event, stored byte-for-byte as first received.

    Only ``published_at`` may change after insert, and only from NULL to a time (a trigger
    enforces it); rows are never deleted.
    """

    __tablename__ = "stripe_events"
    __table_args__ = (
        CheckConstraint(
            "recovery_source IN ('webhook', 'events_list')", name="stripe_events_recovery_source"
        ),
        CheckConstraint("octet_length(payload_sha256) = 32", name="stripe_events_sha256_len"),
        Index("stripe_events_created_order", "stripe_created_at", "event_id"),
        Index(
            "stripe_events_unpublished",
            "archive_seq",
            postgresql_where=text("published_at IS NULL"),
        ),
        Index("stripe_events_type_created", "event_type", "stripe_created_at"),
        Index(
            "stripe_events_customer_created",
            "stripe_customer_id",
            "stripe_created_at",
            "event_id",
            postgresql_where=text("stripe_customer_id IS NOT NULL"),
        ),
    )

    archive_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    event_type: Mapped[str] = mapped_column(Text)
    api_version: Mapped[str | None] = mapped_column(Text)
    stripe_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    livemode: Mapped[bool] = mapped_column(Boolean)
    account: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_sha256: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    recovery_source: Mapped[str] = mapped_column(Text)
    recovered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Derived from the payload at archive time (migration 0013 backfilled older rows):
    #: write-once, like published_at.
    stripe_customer_id: Mapped[str | None] = mapped_column(Text)


class PayloadDivergence(Base):
    """The same event id arrived again with different bytes: the variant, kept for drift."""

    __tablename__ = "payload_divergences"
    __table_args__ = (UniqueConstraint("event_id", "divergent_sha256"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(Text, index=True)  # payload_divergences_event
    original_sha256: Mapped[bytes] = mapped_column(LargeBinary)
    divergent_sha256: Mapped[bytes] = mapped_column(LargeBinary)
    divergent_payload: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


stripe_events = cast(Table, StripeEvent.__table__)
payload_divergences = cast(Table, PayloadDivergence.__table__)
