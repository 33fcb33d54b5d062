"""ledger schema: the account refresh reads subscriptions per customer (issue 12, goal 2).

Revision ID: 0026_live9
Revises: 0025_parallel_rebuild
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0026_live9"
down_revision = "0025_parallel_rebuild"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# A live ledger that starts empty has no statistics until autovacuum's first ANALYZE. In
# that state ledger.query_refresh_accounts planned `s.stripe_customer_id = ANY(c.customers)`
# (the account's primary subscription, and its MRR sums) as a sequential scan of
# ledger.subscriptions per account, twice: accounts x subscriptions rows read per batch, most
# of the account refresh on the live bench (bench/RESULTS.md, "Ninth pass: live"). Now:
#
# * both laterals read the subscriptions per customer of the account (OFFSET 0 keeps the
#   lookup per customer, through subscriptions_customer, with or without statistics);
# * the final comparison reads each id once (the rows of ids that are no account are NULL)
#   instead of joining a second unnest(p_ids) to them, which the generic plan a session
#   switches to after five calls ran as a nested loop over both lists.
#
# The rows are the same (tests/ledger/queries/test_account_refresh_per_customer.py compares
# them with the 0020 function's, kept as this revision's frozen downgrade copy).
FUNCTIONS_SQL = Path(__file__).with_name("0026_functions.sql").read_text(encoding="utf-8")
DOWNGRADE_SQL = Path(__file__).with_name("0026_downgrade_functions.sql").read_text(encoding="utf-8")


def upgrade() -> None:
    op.execute(FUNCTIONS_SQL)


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
