"""ledger schema: the query_* rebuild in parts that can run side by side (issue 12).

Revision ID: 0025_parallel_rebuild
Revises: 0024_revenue_days
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0025_parallel_rebuild"
down_revision = "0024_revenue_days"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# The end of a bulk replay ran the whole query_* rebuild in one statement on one connection,
# after everything else: 5-7 s of a 1M-event replay with the other core idle (bench/RESULTS.md,
# "Eighth pass"). The rebuild's work falls into parts that read only source tables and each
# fill their own query_* tables (accounts, MRR, invoices, event counts, logins), so:
#
# * ledger.query_support_parts() lists them, in the order a one-transaction rebuild runs them;
# * ledger.query_support_rebuild_part(part, chunk DEFAULT 5000) truncates and refills one
#   part's tables, dropping and rebuilding its row table's secondary indexes as 0023 did for
#   all three row tables at once;
# * ledger.query_support_rebuild() and query_support_rebuild_in(chunk) run every part in
#   order, in the caller's transaction: the same rows as before (tests compare them);
# * the replay's end runs the parts on two connections (services/ledger/replay.py).
#
# Frozen copies (see 0007): the functions as 0025 leaves them, and the rebuild as it was.
FUNCTIONS_SQL = Path(__file__).with_name("0025_functions.sql").read_text(encoding="utf-8")
DOWNGRADE_SQL = Path(__file__).with_name("0025_downgrade_functions.sql").read_text(encoding="utf-8")


def upgrade() -> None:
    op.execute(FUNCTIONS_SQL)


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
