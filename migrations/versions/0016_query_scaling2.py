"""ledger schema: the back-office reads that still grew after 0014 (issue 12 goal 4).

Revision ID: 0016_query_scaling2
Revises: 0015_drift_check_writes
"""

from __future__ import annotations

from alembic import op

revision = "0016_query_scaling2"
down_revision = "0015_drift_check_writes"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# * query_accounts_facet: the live accounts in (plan, status, account_id) order. A plan or
#   status sort under a plan / status filter walked the sort's own index and tested the other
#   filter row by row, crossing every row of a sort value the filter leaves empty (at 200,000
#   accounts every past_due account when none has the filtered plans: 488 ms p95). The reader
#   now merges one range of this index per (plan, status) pair query_account_facets says has
#   matches: O(pairs x page) at any size.
INDEXES_SQL = """
CREATE INDEX query_accounts_facet ON ledger.query_accounts (plan, status, account_id)
    WHERE deleted_at IS NULL;
"""


def upgrade() -> None:
    op.execute(INDEXES_SQL)


def downgrade() -> None:
    op.execute("DROP INDEX ledger.query_accounts_facet")
