"""ledger schema: money rules (issue 6).

Revision ID: 0007_ledger_money_rules
Revises: 0006_faster_query_triggers
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0007_ledger_money_rules"
down_revision = "0006_faster_query_triggers"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# ledger.charges: each charge's cumulative ``amount_refunded`` (a ``greatest`` column: it only
# grows). From API 2022-11-15 a ``charge.refunded`` event carries no list of refunds, so an
# archive without ``refund.*`` events would otherwise never record the money given back; the
# projection takes, per invoice, the larger of the refunds recorded and the charges' totals.
TABLES_SQL = """
CREATE TABLE ledger.charges (
    charge_id text PRIMARY KEY,
    payment_intent_id text,
    invoice_id text,
    stripe_customer_id text,
    amount bigint,
    currency text CONSTRAINT charges_currency CHECK (currency ~ '^[A-Z]{3}$'),
    status text,
    charge_created timestamptz,
    amount_refunded bigint,
    refunded_at timestamptz,
    state_event_created timestamptz NOT NULL,
    state_event_id text NOT NULL
);
CREATE INDEX charges_payment_intent ON ledger.charges (payment_intent_id);

-- query_refresh_mrr removes days whose deltas cancel out (see ledger_functions.sql).
CREATE INDEX query_mrr_daily_zero ON ledger.query_mrr_daily (day)
    WHERE committed_delta = 0 AND forward_delta = 0;
"""

# The ledger's functions: the shared rules as SQL twins of their Python homes (is_ended,
# is_cancelling, account_id, round_half_even) and the bodies of 0002-0006 rewritten to use
# them. The live, readable text is migrations/sql/ledger_functions.sql; this revision runs its
# own frozen copy, written next to it, so a later edit of the live file never changes what
# 0007 did (a later change ships its own revision with its own copy).
FUNCTIONS_SQL = Path(__file__).with_name("0007_ledger_functions.sql").read_text(encoding="utf-8")

_RULE_FUNCTIONS = (
    "ledger.is_ended(text, timestamp with time zone)",
    "ledger.is_cancelling(boolean, timestamp with time zone, timestamp with time zone)",
    "ledger.account_id(text, text, text, text)",
    "ledger.round_half_even(numeric, numeric)",
)


def upgrade() -> None:
    op.execute(TABLES_SQL)
    op.execute(FUNCTIONS_SQL)
    op.execute("SELECT ledger.query_support_rebuild()")  # renewal dates follow is_cancelling


def downgrade() -> None:
    """Back to 0006: its function bodies (a frozen dump of them), then drop what 0007 added."""
    op.execute(Path(__file__).with_name("0007_downgrade_functions.sql").read_text(encoding="utf-8"))
    for signature in _RULE_FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    op.execute("DROP INDEX IF EXISTS ledger.query_mrr_daily_zero")
    op.execute("DROP TABLE IF EXISTS ledger.charges")
