"""ledger schema: accounts indexed by their default payment method (issue 12, ninth pass).

Revision ID: 0027_account_keys
Revises: 0026_live9
"""

from __future__ import annotations

from alembic import op

revision = "0027_account_keys"
down_revision = "0026_live9"
branch_labels = None
depends_on = None

# The derived refresh of a batch's accounts (services/ledger/projection.py, ACCOUNTS_REFRESH
# with _ACCOUNT_KEYS) recomputes the accounts the batch touched: its customers, and the
# accounts whose default payment method is one of the batch's payment methods. The second
# half had no index, so the one keyed statement read every account, twice (a scan, then a
# join back to the rows it updates): 16-44 ms per batch at 20,000 accounts, growing with the
# ledger in every live batch. Partial: most accounts never name a default payment method.


def upgrade() -> None:
    op.execute(
        "CREATE INDEX accounts_default_payment_method ON ledger.accounts"
        " (default_payment_method_id) WHERE default_payment_method_id IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ledger.accounts_default_payment_method")
