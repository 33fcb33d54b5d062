"""The ledger tables the back-office queries read, as SQLAlchemy Core (typed, parametrised).

The DDL lives in migrations 0002 (ledger core), 0003 (directory) and 0004 (the ``query_*``
support tables these queries are fast on); these definitions only have to agree with it and
use their own ``MetaData`` so nothing collides with the other packages' models.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, DATEMULTIRANGE

metadata = MetaData(schema="ledger")


def _ts(name: str) -> Column[object]:
    return Column(name, DateTime(timezone=True))


billing_events = Table(
    "billing_events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("stripe_event_id", Text),
    Column("stripe_event_type", Text),
    Column("event_type", Text),
    Column("tenant_id", Text),
    Column("stripe_customer_id", Text),
    Column("subscription_id", Text),
    Column("from_plan", Text),
    Column("to_plan", Text),
    Column("previous_amount", BigInteger),
    Column("new_amount", BigInteger),
    Column("amount_delta", BigInteger),
    Column("refund_amount", BigInteger),
    Column("committed_mrr", BigInteger),
    Column("forward_mrr", BigInteger),
    Column("currency", Text),
    _ts("occurred_at"),
    Column("reason", Text),
    Column("flags", ARRAY(Text)),
    Column("drift_detected", Boolean),
)

accounts = Table(
    "accounts",
    metadata,
    Column("stripe_customer_id", Text, primary_key=True),
    Column("tenant_id", Text),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("subscription_id", Text, primary_key=True),
    Column("stripe_customer_id", Text),
    Column("status", Text),
    Column("plan", Text),
    Column("unit_amount", BigInteger),
    Column("quantity", Integer),
    Column("interval", Text),
    Column("interval_count", Integer),
    Column("currency", Text),
    _ts("current_period_start"),
    _ts("current_period_end"),
    _ts("trial_end"),
    Column("cancel_at_period_end", Boolean),
    _ts("cancel_at"),
    _ts("ended_at"),
    Column("committed_mrr", BigInteger),
    Column("forward_mrr", BigInteger),
    Column("scheduled_plan", Text),
    Column("scheduled_mrr", BigInteger),
    _ts("scheduled_change_at"),
    _ts("state_event_created"),
)

query_accounts = Table(
    "query_accounts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("tenant_id", Text),
    Column("stripe_customer_ids", ARRAY(Text)),
    Column("primary_customer_id", Text),
    Column("name", Text),
    Column("email", Text),
    _ts("created_at"),
    _ts("deleted_at"),
    Column("unsynced", Boolean),
    Column("drift_detected", Boolean),
    Column("subscription_id", Text),
    Column("plan", Text),
    Column("status", Text),
    _ts("renewal_at"),
    Column("currency", Text),
    Column("committed_mrr", BigInteger),
    Column("forward_mrr", BigInteger),
    Column("mixed_currency", Boolean),
)

query_mrr_steps = Table(
    "query_mrr_steps",
    metadata,
    Column("subscription_id", Text, primary_key=True),
    _ts("occurred_at"),
    Column("stripe_event_id", Text),
    Column("day", Date),
    Column("event_type", Text),
    Column("currency", Text),
    Column("committed", BigInteger),
    Column("forward", BigInteger),
    Column("prev_currency", Text),
    Column("prev_committed", BigInteger),
    Column("prev_forward", BigInteger),
    Column("had_mrr_before", Boolean),
)

query_mrr_daily = Table(
    "query_mrr_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("currency", Text, primary_key=True),
    Column("committed_delta", BigInteger),
    Column("forward_delta", BigInteger),
)

# Live accounts per (creation day, plan, currency) with their committed MRR (migration 0012):
# created_day '-infinity' = unknown, currency '' = none.
query_account_mix = Table(
    "query_account_mix",
    metadata,
    Column("created_day", Date, primary_key=True),
    Column("plan", Text, primary_key=True),
    Column("currency", Text, primary_key=True),
    Column("n", BigInteger),
    Column("committed_mrr", BigInteger),
)

# Same-currency committed-MRR steps per day by shape (migration 0012).
query_mrr_moves_daily = Table(
    "query_mrr_moves_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("currency", Text, primary_key=True),
    Column("prev_sign", SmallInteger, primary_key=True),
    Column("sign", SmallInteger, primary_key=True),
    Column("rising", Boolean, primary_key=True),
    Column("had_mrr_before", Boolean, primary_key=True),
    Column("reactivated", Boolean, primary_key=True),
    Column("n", BigInteger),
    Column("amount", BigInteger),
)

query_invoice_rows = Table(
    "query_invoice_rows",
    metadata,
    Column("row_id", Text, primary_key=True),
    Column("kind", Text),
    Column("invoice_id", Text),
    Column("stripe_customer_id", Text),
    Column("subscription_id", Text),
    Column("number", Text),
    Column("status", Text),
    Column("currency", Text),
    _ts("row_at"),
    Column("row_day", Date),
    Column("amount", BigInteger),
    Column("tax", BigInteger),
    Column("amount_ex_tax", BigInteger),
    Column("amount_paid", BigInteger),
    Column("hosted_invoice_url", Text),
    Column("invoice_pdf", Text),
    _ts("paid_at"),
    Column("reason", Text),
    _ts("revenue_at"),
    Column("revenue_day", Date),
    Column("revenue_amount", BigInteger),
)

query_revenue_daily = Table(
    "query_revenue_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("currency", Text, primary_key=True),
    Column("amount", BigInteger),
)

query_event_daily = Table(
    "query_event_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("event_type", Text, primary_key=True),
    Column("has_delta", Boolean, primary_key=True),
    Column("n", BigInteger),
)

# Billing events per (UTC hour, type, has a delta) (0016): the edge days of a period's total.
query_event_hourly = Table(
    "query_event_hourly",
    metadata,
    Column("hour", DateTime(timezone=True), primary_key=True),
    Column("event_type", Text, primary_key=True),
    Column("has_delta", Boolean, primary_key=True),
    Column("n", BigInteger),
)

query_login_days = Table(
    "query_login_days",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("tenant_key", Text, primary_key=True),
    Column("days", DATEMULTIRANGE),
)

# Counted login days per listed user, and users per (day, previous counted day) (0014).
query_login_users = Table(
    "query_login_users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("days", DATEMULTIRANGE),
)

query_login_pairs = Table(
    "query_login_pairs",
    metadata,
    Column("day", Date, primary_key=True),
    Column("prev_day", Date, primary_key=True),
    Column("n", BigInteger),
)

# Live accounts per (plan, status, drift_detected, unsynced) (0014).
query_account_facets = Table(
    "query_account_facets",
    metadata,
    Column("plan", Text, primary_key=True),
    Column("status", Text, primary_key=True),
    Column("drift_detected", Boolean, primary_key=True),
    Column("unsynced", Boolean, primary_key=True),
    Column("n", BigInteger),
)

# Users the directory does not list (0016): members of deleted tenants only.
query_unlisted_users = Table(
    "query_unlisted_users",
    metadata,
    Column("user_id", Text, primary_key=True),
)

# Sessions the dashboard's active sessions can count (not revoked, user listed) per UTC hour
# of last_seen_at (0019).
query_session_hourly = Table(
    "query_session_hourly",
    metadata,
    Column("hour", DateTime(timezone=True), primary_key=True),
    Column("n", BigInteger),
)

# Invoice-list rows per (UTC day, kind) (0014).
query_invoice_daily = Table(
    "query_invoice_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("n", BigInteger),
)

# Subscriptions and their summed committed MRR per currency (0014).
query_mrr_totals = Table(
    "query_mrr_totals",
    metadata,
    Column("currency", Text, primary_key=True),
    Column("n", BigInteger),
    Column("committed_mrr", BigInteger),
)

__all__ = [
    "accounts",
    "billing_events",
    "query_account_facets",
    "query_account_mix",
    "query_accounts",
    "query_event_daily",
    "query_event_hourly",
    "query_invoice_daily",
    "query_invoice_rows",
    "query_login_days",
    "query_login_pairs",
    "query_login_users",
    "query_mrr_daily",
    "query_mrr_moves_daily",
    "query_mrr_steps",
    "query_mrr_totals",
    "query_revenue_daily",
    "query_session_hourly",
    "query_unlisted_users",
    "subscriptions",
]

#: API-version trouble (migrations 0002 and 0010): ``severity`` ``Critical`` = not classified,
#: ``Warning`` = newer than every known family, classified as ``resolved_family``.
unsupported_events = Table(
    "unsupported_events",
    metadata,
    Column("stripe_event_id", Text, primary_key=True),
    Column("stripe_event_type", Text),
    Column("api_version", Text),
    Column("reason", Text),
    _ts("occurred_at"),
    _ts("recorded_at"),
    Column("severity", Text),
    Column("resolved_family", Text),
)
