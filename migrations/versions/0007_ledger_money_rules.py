"""ledger schema: money rules (issue 6).

Revision ID: 0007_ledger_money_rules
Revises: 0006_faster_query_triggers
"""

from __future__ import annotations

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
"""


def upgrade() -> None:
    op.execute(TABLES_SQL)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ledger.charges")
