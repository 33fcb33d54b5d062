"""ledger schema: a revenue day no revenue row counts in is deleted, not kept at 0 (issue 12).

Revision ID: 0024_revenue_days
Revises: 0023_rebuild_cost
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0024_revenue_days"
down_revision = "0023_rebuild_cost"
branch_labels = None
depends_on = None

# Found by the differential test of 0023 (bench/RESULTS.md, "Seventh pass: the query_*
# rebuild"): the live refresh kept a query_revenue_daily row at amount 0 after the day's last
# revenue row left, the rebuild has none, so VerifyLedger - and the back-office's data-quality
# banner that shows its result - reported a healthy ledger as inconsistent.
#
# Frozen copies (see 0007): the function as 0024 leaves it, and as 0023 left it.
FUNCTIONS_SQL = Path(__file__).with_name("0024_functions.sql").read_text(encoding="utf-8")
DOWNGRADE_SQL = Path(__file__).with_name("0024_downgrade_functions.sql").read_text(encoding="utf-8")

# The rows earlier versions left behind: the same condition as the function's, once for all.
STALE_DAYS_SQL = """
DELETE FROM ledger.query_revenue_daily d
WHERE d.amount = 0
  AND NOT EXISTS (
      SELECT 1 FROM ledger.query_invoice_rows r
      WHERE r.revenue_day = d.day AND r.currency = d.currency
        AND r.revenue_amount IS NOT NULL)
"""


def upgrade() -> None:
    op.execute(FUNCTIONS_SQL)
    op.execute(STALE_DAYS_SQL)


def downgrade() -> None:
    # The deleted amount-0 rows are not put back: they carried nothing, and the rebuild
    # (VerifyLedger's reference) never had them.
    op.execute(DOWNGRADE_SQL)
