"""ledger schema: the back-office reads that still grew after 0014 (issue 12 goal 4).

Revision ID: 0016_query_scaling2
Revises: 0015_drift_check_writes
"""

from __future__ import annotations

from pathlib import Path

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
# * query_event_hourly: billing events per (UTC hour, type, has a delta), kept by the
#   billing_events statement trigger next to query_event_daily and refilled by the rebuild
#   (which now reads the events once, per hour, and sums the days from the hours). A list
#   total over a period read the rows of its two partial edge days one by one to test the
#   lens, a day of events each, growing with the accounts ("mrr 30d": 108 -> 210 ms p95 from
#   10,000 to 200,000 accounts); now only the rows of the partial hours at its two ends (none
#   for a period on whole hours). Rows: hours x types, bounded by time, not accounts.
# * query_unlisted_users: the users the directory does not list (members of a deleted tenant
#   without a live membership), kept by the membership and tenant triggers (the same users
#   whose login days 0014 refreshes there) and refilled by the rebuild. The dashboard's active
#   sessions left them out with a join of the deleted tenants to every membership (a sequential
#   scan of 100,000 memberships at 200,000 accounts, most of the statement's 54 ms); now it
#   leaves out this table's rows.
TABLES_SQL = """
CREATE INDEX query_accounts_facet ON ledger.query_accounts (plan, status, account_id)
    WHERE deleted_at IS NULL;

CREATE TABLE ledger.query_event_hourly (
    hour timestamptz NOT NULL,
    event_type text NOT NULL,
    has_delta boolean NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (hour, event_type, has_delta)
);
INSERT INTO ledger.query_event_hourly (hour, event_type, has_delta, n)
SELECT date_trunc('hour', occurred_at, 'UTC'), event_type, COALESCE(amount_delta, 0) <> 0,
       count(*)
FROM ledger.billing_events GROUP BY 1, 2, 3;

CREATE TABLE ledger.query_unlisted_users (user_id text PRIMARY KEY);
"""

FILL_SQL = """
SELECT ledger.query_refresh_unlisted_users(ARRAY(
    SELECT m.user_id FROM ledger.memberships m
    JOIN ledger.tenants t ON t.tenant_id = m.tenant_id WHERE t.deleted_at IS NOT NULL));
"""

# Frozen copies (see 0007): the functions as 0016 leaves them, and as 0015 had them.
FUNCTIONS_SQL = Path(__file__).with_name("0016_functions.sql").read_text(encoding="utf-8")
DOWNGRADE_SQL = Path(__file__).with_name("0016_downgrade_functions.sql").read_text(encoding="utf-8")


def upgrade() -> None:
    op.execute(TABLES_SQL)
    op.execute(FUNCTIONS_SQL)
    op.execute(FILL_SQL)


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
    op.execute("DROP FUNCTION ledger.query_refresh_unlisted_users(text[])")
    op.execute("DROP TABLE ledger.query_event_hourly, ledger.query_unlisted_users")
    op.execute("DROP INDEX ledger.query_accounts_facet")
