"""ingest: the append-only guard runs only where it can refuse; payloads stored uncompressed
(issue 12 goal 3).

Revision ID: 0018_ingest_stamp
Revises: 0017_live_refresh
"""

from __future__ import annotations

from alembic import op

revision = "0018_ingest_stamp"
down_revision = "0017_live_refresh"
branch_labels = None
depends_on = None

# Written out (not generated from the models) so this revision never changes under later edits.
#
# Until now ``ingest.stripe_events_guard`` ran on EVERY row update, and the publisher's
# ``published_at`` stamp (one UPDATE per webhook) is the only update the archive sees: each
# stamp ran the guard's ``IS DISTINCT FROM`` over every archived column, which reads, and
# for a compressed payload decompresses, the payload twice (~22 us of PostgreSQL CPU per
# webhook, bench/RESULTS.md "Where the ingest CPU goes now").
#
# The guard function stays as it is (0013's, byte for byte); only WHEN it runs changes. It
# refuses an update in exactly three cases, and each now has a trigger that fires in it:
#
# * an archived column changes: ``stripe_events_archived_columns`` fires for every UPDATE
#   whose SET list names one of them (``UPDATE OF``, decided from the statement's target
#   list, free per row), also through ``INSERT ... ON CONFLICT DO UPDATE``, ``MERGE`` and
#   updatable views. An archived column can change only if the statement names it: no other
#   trigger on this table rewrites NEW (a column-specific trigger does not see another BEFORE
#   trigger's changes, so one added later must not write archived columns either).
#   ``SET payload = payload`` still passes, as before (the function compares values).
# * ``published_at`` or ``stripe_customer_id`` changes once set: ``stripe_events_write_once``
#   fires only WHEN that is the case, a comparison of two small inline columns that never
#   reads the payload. The stamp (NULL -> a time) does not match it: no function call at all.
#
# So the stamp runs no trigger function, and every update the old trigger refused is still
# refused with the same error (tests/ingest/test_append_only.py tries each way around it).
# DELETE and TRUNCATE keep their triggers of 0001.
ARCHIVED_COLUMNS = (
    "archive_seq, event_id, event_type, api_version, stripe_created_at, livemode, account,"
    " payload, payload_sha256, received_at, recovery_source, recovered_at"
)

UPGRADE_SQL = f"""
DROP TRIGGER stripe_events_no_update ON ingest.stripe_events;
CREATE TRIGGER stripe_events_archived_columns
    BEFORE UPDATE OF {ARCHIVED_COLUMNS} ON ingest.stripe_events
    FOR EACH ROW EXECUTE FUNCTION ingest.stripe_events_guard();
CREATE TRIGGER stripe_events_write_once
    BEFORE UPDATE ON ingest.stripe_events
    FOR EACH ROW
    WHEN ((OLD.published_at IS NOT NULL AND NEW.published_at IS DISTINCT FROM OLD.published_at)
       OR (OLD.stripe_customer_id IS NOT NULL
           AND NEW.stripe_customer_id IS DISTINCT FROM OLD.stripe_customer_id))
    EXECUTE FUNCTION ingest.stripe_events_guard();
"""

# The payload is stored as received, without pglz compression (STORAGE EXTERNAL: kept inline
# when the row is small, else out of line in the TOAST table, uncompressed). Compressing cost
# the archive INSERT 14-36 us per row (real fixtures' sizes / the bench's 3 KB event) of
# PostgreSQL CPU on the webhook's path, for 14% (real fixtures) to 59% (3 KB events) more
# bytes; reads cost the same either way (bench/RESULTS.md "Fifth pass"). Rows archived before
# keep their compressed payloads (SET STORAGE changes only how new values are stored).
STORAGE_SQL = "ALTER TABLE ingest.stripe_events ALTER COLUMN payload SET STORAGE EXTERNAL"
STORAGE_BEFORE_SQL = "ALTER TABLE ingest.stripe_events ALTER COLUMN payload SET STORAGE EXTENDED"

DOWNGRADE_SQL = """
DROP TRIGGER stripe_events_write_once ON ingest.stripe_events;
DROP TRIGGER stripe_events_archived_columns ON ingest.stripe_events;
CREATE TRIGGER stripe_events_no_update BEFORE UPDATE ON ingest.stripe_events
    FOR EACH ROW EXECUTE FUNCTION ingest.stripe_events_guard();
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL)
    op.execute(STORAGE_SQL)


def downgrade() -> None:
    op.execute(STORAGE_BEFORE_SQL)
    op.execute(DOWNGRADE_SQL)
