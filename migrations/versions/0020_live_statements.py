"""ledger schema: the live account refresh writes only the rows that change (issue 12 goal 2).

Revision ID: 0020_live_statements
Revises: 0019_dashboard_scaling
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0020_live_statements"
down_revision = "0019_dashboard_scaling"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# query_refresh_accounts deleted every account it was asked to refresh and inserted it
# again: a dead heap row and a new entry in each of query_accounts' ~20 indexes (trigram GIN
# ones included) per refresh, although most refreshes of a live batch compute the row that
# is already stored (a payment method, an invoice or an event of the customer changes
# nothing the row shows). Now it computes the rows with the same statement, compares them
# with the stored rows and writes only the ones that differ (an upsert in place, a delete
# for an account that no longer has members); the mix and facets move for those accounts
# only. Same rows by construction; the differential test is
# tests/ledger/queries/test_account_refresh_in_place.py.
#
# Frozen copies (see 0007): the function as 0020 leaves it, and as 0017 had it.
FUNCTIONS_SQL = Path(__file__).with_name("0020_functions.sql").read_text(encoding="utf-8")
DOWNGRADE_SQL = Path(__file__).with_name("0020_downgrade_functions.sql").read_text(encoding="utf-8")


def upgrade() -> None:
    op.execute(FUNCTIONS_SQL)


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
