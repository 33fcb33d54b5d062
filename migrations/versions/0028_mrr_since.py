"""ledger schema: a batch's MRR steps are recomputed from its earliest event (issue 12).

Revision ID: 0028_mrr_since
Revises: 0027_account_keys
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0028_mrr_since"
down_revision = "0027_account_keys"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# ledger.query_refresh_mrr recomputed every touched subscription's MRR steps from its first
# event: each live batch read, and ran four window functions over, the whole MRR history of
# every subscription it touched, a cost that grows with the ledger's age although a batch
# adds only its own events at the end. billing_events only grows, so the steps before a
# batch's earliest new event cannot change: the refresh now takes that bound (p_since),
# starts from the state of the last stored step before it, and reads, recomputes and
# compares only the steps from there. The rebuild, and any caller without a bound, still
# recomputes from the first event (p_since NULL), with the same statement.
#
# * query_touch(kind, ids, since) and its queue pg_temp.query_touches (kind, ids, since):
#   0021's query_touched had no room for the bound; a session that created it before this
#   migration keeps it unused;
# * query_on_billing_events passes the earliest occurred_at of the statement's new MRR
#   events; query_flush the earliest bound of the batch's MRR touches (none if one had none).
#
# The steps are the same (tests/ledger/queries/test_mrr_since.py compares them with a full
# recomputation after batches that end, straddle and precede the stored steps; the
# order-independence property test delivers events in any order).
FUNCTIONS_SQL = Path(__file__).with_name("0028_functions.sql").read_text(encoding="utf-8")
DOWNGRADE_SQL = Path(__file__).with_name("0028_downgrade_functions.sql").read_text(encoding="utf-8")


def upgrade() -> None:
    op.execute(FUNCTIONS_SQL)


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
