"""The directory's tables in the ``ledger`` schema, as SQLAlchemy Core for typed queries.

The DDL itself lives in migration ``0003_ledger_directory`` (written out, so history never
changes); these definitions only have to agree with it. They use their own ``MetaData`` so
nothing here can collide with the ledger core's models.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import INET

SCHEMA = "ledger"
metadata = MetaData(schema=SCHEMA)

ROLES = ("owner", "admin", "member", "viewer")
STATUSES = ("active", "inactive", "pending")
LOGIN_METHODS = ("password", "sso", "magic_link", "oauth", "api")
LOGIN_OUTCOMES = ("success", "failure", "locked")

tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("plan_hint", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
)

users = Table(
    "users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("email", Text, nullable=False, unique=True),
    Column("first_name", Text, nullable=False),
    Column("last_name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user_id", Text, ForeignKey("ledger.users.user_id"), primary_key=True),
    Column("tenant_id", Text, ForeignKey("ledger.tenants.tenant_id"), primary_key=True),
    Column("role", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

logins = Table(
    "logins",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("login_id", Text, unique=True),
    Column("user_id", Text, ForeignKey("ledger.users.user_id"), nullable=False),
    Column("tenant_id", Text, ForeignKey("ledger.tenants.tenant_id")),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("method", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("ip", INET),
    Column("user_agent", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", Text, primary_key=True),
    Column("user_id", Text, ForeignKey("ledger.users.user_id"), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("ip", INET),
    Column("user_agent", Text, nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revocation_reason", Text),
)

# Migration 0005_customer_links: explicit Stripe customer -> tenant links (operator input).
customer_links = Table(
    "customer_links",
    metadata,
    Column("stripe_customer_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("linked_at", DateTime(timezone=True), nullable=False),
    Column("linked_by", Text),
    Column("note", Text),
)
