"""ledger schema: the live account and MRR refreshes write only the rows that change (issue 12).

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
# query_refresh_mrr, the same way: it recomputed a touched subscription's MRR steps from all
# its events, deleted every stored step and inserted them all again (a live batch touching a
# subscription with 30 steps rewrote 30 rows and their two indexes to add one). Now the steps
# computed the same way are kept in a variable; only the stored steps that differ from them
# are deleted (their contributions to the day and move totals subtracted) and only the new
# ones inserted (added): the totals move by (inserted - deleted), which is what (all new -
# all old) was, since unchanged steps cancel out.
#
# query_support_rebuild: since the refreshes above hold a call's computed rows in memory, the
# rebuild calls them 5,000 ids at a time (query_support_rebuild_in(p_chunk), new) instead of
# once for the whole ledger (the backend's private memory 42 -> 100 MiB at 1M events in one
# call; bounded by the chunk now).
#
# Frozen copies (see 0007): the functions as 0020 leaves them, and as they were before.
FUNCTIONS_SQL = Path(__file__).with_name("0020_functions.sql").read_text(encoding="utf-8")
DOWNGRADE_SQL = Path(__file__).with_name("0020_downgrade_functions.sql").read_text(encoding="utf-8")


def upgrade() -> None:
    op.execute(FUNCTIONS_SQL)


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
