"""ledger schema: the live consumer's account refresh without a scan per account (issue 12 goal 2).

Revision ID: 0017_live_refresh
Revises: 0016_query_scaling2
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0017_live_refresh"
down_revision = "0016_query_scaling2"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# query_refresh_accounts decided an account's drift flag on the customer side with one
# EXISTS over `b.stripe_customer_id = ANY(customers) AND b.drift_detected`. On a ledger
# without statistics (every new deployment fed live: the consumer never ANALYZEs, autovacuum
# comes later) the planner takes `drift_detected` to hold for half the rows, so it expects
# many matches, reckons a sequential scan finds the first one soonest and runs it ONCE PER
# ACCOUNT of every refresh: 91% of the statement at 41k events, growing with the table.
# Now the EXISTS asks per customer (`stripe_customer_id = cu.id`), which the planner answers
# with the partial index query_billing_events_drift_customer with or without statistics
# (EXPLAIN ANALYZE on a never-analyzed and on an analyzed ledger, bench/RESULTS.md "Fifth
# pass"). Same answer: some drift event of one of the account's customers.
#
# query_on_customer_links: a link written, moved or removed now also refreshes the tenants
# of the linked customer's drift events. The tenant-side drift check leaves out an event of
# a customer linked to another tenant, so the link decides it; a link written after such an
# event left the event's tenant flagged until a rebuild (found by this revision's
# differential test: the live rows against the 0016 function's rebuild).
#
# Frozen copies (see 0007): the function as 0017 leaves it, and as 0016 had it.
FUNCTIONS_SQL = Path(__file__).with_name("0017_functions.sql").read_text(encoding="utf-8")
DOWNGRADE_SQL = Path(__file__).with_name("0017_downgrade_functions.sql").read_text(encoding="utf-8")


def upgrade() -> None:
    op.execute(FUNCTIONS_SQL)


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
