"""ledger schema: the dashboard's active sessions from per-hour counts (issue 12 goal 4).

Revision ID: 0019_dashboard_scaling
Revises: 0018_ingest_stamp
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0019_dashboard_scaling"
down_revision = "0018_ingest_stamp"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# * query_session_hourly: the sessions the dashboard's "active sessions" can count (not
#   revoked, user listed: not in query_unlisted_users) per UTC hour of last_seen_at. The
#   count was an index range over every session seen in the 24 hours before as_of (33,000
#   rows at 200,000 accounts in the bench, 17 ms of the dashboard's growth); now it sums
#   the 24 whole hours of the window from here and reads row by row only its partial hours
#   at the two ends (none when as_of is on the hour) and the sessions revoked after as_of
#   (none when as_of is now). Rows: hours, bounded by time, not sessions.
#   Kept by a row trigger on sessions whose WHEN skips a touch staying in its hour (what
#   most RecordSession calls are), and by statement triggers on query_unlisted_users (a user
#   entering or leaving it moves its sessions; its TRUNCATE, the rebuild's, recounts).
# * sessions_revoked: the revoked sessions by revocation time, for the "revoked after
#   as_of" part above.
TABLES_SQL = """
CREATE TABLE ledger.query_session_hourly (
    hour timestamptz PRIMARY KEY,
    n bigint NOT NULL
);
CREATE INDEX query_session_hourly_zero ON ledger.query_session_hourly (hour) WHERE n = 0;
CREATE INDEX sessions_revoked ON ledger.sessions (revoked_at, last_seen_at)
    WHERE revoked_at IS NOT NULL;
"""

TRIGGERS_SQL = """
CREATE TRIGGER query_session_hours_insert AFTER INSERT ON ledger.sessions
    FOR EACH ROW EXECUTE FUNCTION ledger.query_on_session_hours();
CREATE TRIGGER query_session_hours_update AFTER UPDATE ON ledger.sessions
    FOR EACH ROW WHEN (
        (OLD.revoked_at IS NULL) <> (NEW.revoked_at IS NULL)
        OR OLD.user_id <> NEW.user_id
        OR date_trunc('hour', OLD.last_seen_at, 'UTC')
           <> date_trunc('hour', NEW.last_seen_at, 'UTC'))
    EXECUTE FUNCTION ledger.query_on_session_hours();
CREATE TRIGGER query_session_hours_delete AFTER DELETE ON ledger.sessions
    FOR EACH ROW EXECUTE FUNCTION ledger.query_on_session_hours();
CREATE TRIGGER query_unlisted_session_hours_insert AFTER INSERT ON ledger.query_unlisted_users
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.query_on_unlisted_session_hours();
CREATE TRIGGER query_unlisted_session_hours_update AFTER UPDATE ON ledger.query_unlisted_users
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.query_on_unlisted_session_hours();
CREATE TRIGGER query_unlisted_session_hours_delete AFTER DELETE ON ledger.query_unlisted_users
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.query_on_unlisted_session_hours();
CREATE TRIGGER query_unlisted_session_hours_truncate AFTER TRUNCATE
    ON ledger.query_unlisted_users
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.query_on_unlisted_session_hours();
"""

FILL_SQL = """
SELECT ledger.query_add_session_hours(NULL, 1);
SELECT ledger.query_add_session_hours(ARRAY(SELECT user_id FROM ledger.query_unlisted_users), -1);
"""

# Frozen copy (see 0007): the functions as 0019 leaves them (all new).
FUNCTIONS_SQL = Path(__file__).with_name("0019_functions.sql").read_text(encoding="utf-8")
_TRIGGERS = (
    ("query_session_hours_insert", "sessions"),
    ("query_session_hours_update", "sessions"),
    ("query_session_hours_delete", "sessions"),
    ("query_unlisted_session_hours_insert", "query_unlisted_users"),
    ("query_unlisted_session_hours_update", "query_unlisted_users"),
    ("query_unlisted_session_hours_delete", "query_unlisted_users"),
    ("query_unlisted_session_hours_truncate", "query_unlisted_users"),
)
_NEW_FUNCTIONS = (
    "query_on_unlisted_session_hours()",
    "query_on_session_hours()",
    "query_add_session_hours(text[], integer)",
)


def upgrade() -> None:
    op.execute(TABLES_SQL)
    op.execute(FUNCTIONS_SQL)
    op.execute(TRIGGERS_SQL)
    op.execute(FILL_SQL)


def downgrade() -> None:
    for name, table in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON ledger.{table}")
    for signature in _NEW_FUNCTIONS:
        op.execute(f"DROP FUNCTION ledger.{signature}")
    op.execute("DROP INDEX ledger.sessions_revoked")
    op.execute("DROP TABLE ledger.query_session_hourly")
