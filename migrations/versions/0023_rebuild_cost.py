"""ledger schema: the query_* rebuild costs less - refunds hashed, MRR events by index (issue 12).

Revision ID: 0023_rebuild_cost
Revises: 0021_batch_refresh
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0023_rebuild_cost"
down_revision = "0021_batch_refresh"  # written beside 0021 (no 0022: its slot was not used)
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# Profiled on a copy of the 50k-account bench fill (980,000 events) with track_functions and
# auto_explain (bench/RESULTS.md, "Seventh pass: the query_* rebuild"): of the rebuild,
#
# * query_refresh_invoices joined each invoice with its refunds on "payment intent matches OR
#   charge matches": no hash or merge join serves an OR, so the planner probed refunds twice
#   per payment (225k payments) or, on a small ledger, compared every payment with every
#   refund (4,533 x 204 at 41k events: 300 of the call's 500 ms). Now two equality joins, the
#   second leaving out the refunds the first found, as PAYMENTS_REFRESH does since livepg6.
#   Its materialized invoice CTE keeps only the payments columns it reads (was x.*: 70 MB
#   written to disk in the rebuild at 1M events).
# * query_refresh_mrr joined the ids with billing_events; for the rebuild's 5,000 ids per call
#   the planner hashed every MRR event of the ledger (588k rows) once per call, ten times at
#   1M events. Now a LATERAL lookup per subscription on billing_events_subscription_time.
# * query_support_rebuild_in inserted every row of query_accounts (17 secondary indexes,
#   trigram GIN ones among them), query_invoice_rows (4) and query_mrr_steps (2) into each
#   index one entry at a time. Now those non-unique indexes are dropped after the TRUNCATE
#   (which already holds the tables exclusively until commit) and built once at the end from
#   their own definitions (pg_get_indexdef); unique ones stay for ON CONFLICT and lookups.
#
# Signatures and rows unchanged: tests/ledger/queries/test_rebuild_cost.py compares them
# with these functions as 0020 left them (the downgrade copy).
#
# Frozen copies (see 0007): the functions as 0023 leaves them, and as they were before.
FUNCTIONS_SQL = Path(__file__).with_name("0023_functions.sql").read_text(encoding="utf-8")
DOWNGRADE_SQL = Path(__file__).with_name("0023_downgrade_functions.sql").read_text(encoding="utf-8")


def upgrade() -> None:
    op.execute(FUNCTIONS_SQL)


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
