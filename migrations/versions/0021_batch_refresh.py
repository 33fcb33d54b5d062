"""ledger schema: a projection batch refreshes each touched query_* row once (issue 12).

Revision ID: 0021_batch_refresh
Revises: 0020_live_statements
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0021_batch_refresh"
down_revision = "0020_live_statements"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# In one live batch each read-model upsert fired the statement-level query_on_* triggers,
# each of which refreshed the query_accounts / query_mrr_steps / query_invoice_rows of the
# ids it touched at once; the derived refresh's UPDATEs that follow the upserts fired them
# again. Measured on the 41k bench world (21 batches of 2,000): 126 account refreshes (35
# with ids) computing 5,052 account rows for 4,552 distinct per batch, 140 invoice refreshes
# (89 with ids) computing 9,156 invoices' rows for 4,637 distinct (bench/RESULTS.md, "Seventh
# pass").
#
# Now the triggers compute the same id arrays but hand them to ledger.query_touch(kind,
# ids): it refreshes at once as before, unless the transaction has set ledger.query_defer =
# 'on' (the projection's apply_staged does, for its batch); then it queues the ids in the
# session's temporary table query_touched and ledger.query_flush() at the end of the batch
# refreshes each kind once, for the distinct ids. A deferring transaction that does not
# flush is flushed at COMMIT by a DEFERRABLE INITIALLY DEFERRED constraint trigger on the
# queue. Differential test: tests/ledger/queries/test_batch_refresh.py.
#
# query_on_payments, found by the same measurement: its UPDATE branch compared each updated
# payment's old and new row, without the refund and credit totals, as to_jsonb of both rows
# (~60 us per payment; the payments upsert, PAYMENT_INTENT_REFRESH and PAYMENTS_REFRESH each
# update most of a batch's payments). Now the two rows with those four columns set to NULL
# (jsonb_populate_record) are compared as binary images (*<>): still every other column, one
# added later too; tests/ledger/queries/test_payments_refresh.py checks what it filters.
# And it runs through EXECUTE, planned for each statement's transition tables: plpgsql had
# cached the plan of the session's first UPDATE (the empty UPDATE half of the first batch's
# upsert, 1 row estimated), a nested loop over the two transition tables in every later
# batch (156 x 156 rows: 24,180 join-filter rows, 26 ms, in one batch of the 41k world).
#
# Frozen copies (see 0007): the functions as 0021 leaves them, and as they were before.
FUNCTIONS_SQL = Path(__file__).with_name("0021_functions.sql").read_text(encoding="utf-8")
DOWNGRADE_SQL = Path(__file__).with_name("0021_downgrade_functions.sql").read_text(encoding="utf-8")


def upgrade() -> None:
    op.execute(FUNCTIONS_SQL)


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
