"""ingest: the Stripe customer of each archived event, for the back-office's webhook log
filtered by account (issue 9).

Revision ID: 0013_gateway_gaps
Revises: 0012_query_speed
"""

from __future__ import annotations

from alembic import op

revision = "0013_gateway_gaps"
down_revision = "0012_query_speed"
branch_labels = None
depends_on = None

# Written out (not generated from the models) so this revision never changes under later edits.
#
# ``stripe_customer_id`` is derived from the payload (services/ingest/envelope.py
# ``customer_of``: ``data.object.customer``, an expanded customer's id, or the id of a
# customer object), set when the event is archived. The archive stays append-only: the
# payload and every archived column are untouched, and the new column is write-once (NULL to
# a value, as published_at), which the guard below enforces for it too.
COLUMN_SQL = """
ALTER TABLE ingest.stripe_events ADD COLUMN stripe_customer_id text;
"""

# The same rule as customer_of, in SQL, for the rows archived before this revision. A payload
# jsonb refuses (a \\u0000 or a lone surrogate in some string) has no customer here, as in
# Python, where such a value is not kept either.
BACKFILL_SQL = """
CREATE FUNCTION pg_temp.customer_of(p bytea) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    o jsonb;
    v jsonb;
BEGIN
    BEGIN
        o := convert_from(p, 'UTF8')::jsonb -> 'data' -> 'object';
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END;
    IF jsonb_typeof(o) IS DISTINCT FROM 'object' THEN
        RETURN NULL;
    END IF;
    v := CASE WHEN o -> 'object' = '"customer"'::jsonb THEN o -> 'id' ELSE o -> 'customer' END;
    IF jsonb_typeof(v) = 'object' THEN
        v := v -> 'id';
    END IF;
    IF jsonb_typeof(v) IS DISTINCT FROM 'string' OR v #>> '{}' = ''
       OR length(v #>> '{}') > 255 THEN
        RETURN NULL;
    END IF;
    RETURN v #>> '{}';
END $$;

UPDATE ingest.stripe_events e SET stripe_customer_id = d.customer
FROM (
    SELECT archive_seq, pg_temp.customer_of(payload) AS customer FROM ingest.stripe_events
) d
WHERE e.archive_seq = d.archive_seq AND d.customer IS NOT NULL;

DROP FUNCTION pg_temp.customer_of(bytea);

CREATE INDEX stripe_events_customer_created
    ON ingest.stripe_events (stripe_customer_id, stripe_created_at, event_id)
    WHERE stripe_customer_id IS NOT NULL;
"""

_GUARD = """
CREATE OR REPLACE FUNCTION ingest.stripe_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'ingest.stripe_events is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.archive_seq IS DISTINCT FROM OLD.archive_seq
       OR NEW.event_id IS DISTINCT FROM OLD.event_id
       OR NEW.event_type IS DISTINCT FROM OLD.event_type
       OR NEW.api_version IS DISTINCT FROM OLD.api_version
       OR NEW.stripe_created_at IS DISTINCT FROM OLD.stripe_created_at
       OR NEW.livemode IS DISTINCT FROM OLD.livemode
       OR NEW.account IS DISTINCT FROM OLD.account
       OR NEW.payload IS DISTINCT FROM OLD.payload
       OR NEW.payload_sha256 IS DISTINCT FROM OLD.payload_sha256
       OR NEW.received_at IS DISTINCT FROM OLD.received_at
       OR NEW.recovery_source IS DISTINCT FROM OLD.recovery_source
       OR NEW.recovered_at IS DISTINCT FROM OLD.recovered_at THEN
        RAISE EXCEPTION 'ingest.stripe_events is append-only: archived columns cannot change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.published_at IS NOT NULL AND NEW.published_at IS DISTINCT FROM OLD.published_at THEN
        RAISE EXCEPTION 'ingest.stripe_events.published_at is write-once'
            USING ERRCODE = 'insufficient_privilege';
    END IF;{customer_write_once}
    RETURN NEW;
END $$;
"""
_CUSTOMER_WRITE_ONCE = """
    IF OLD.stripe_customer_id IS NOT NULL
       AND NEW.stripe_customer_id IS DISTINCT FROM OLD.stripe_customer_id THEN
        RAISE EXCEPTION 'ingest.stripe_events.stripe_customer_id is write-once'
            USING ERRCODE = 'insufficient_privilege';
    END IF;"""
GUARD_SQL = _GUARD.replace("{customer_write_once}", _CUSTOMER_WRITE_ONCE)
GUARD_BEFORE_SQL = _GUARD.replace("{customer_write_once}", "")


def upgrade() -> None:
    op.execute(COLUMN_SQL)
    op.execute(BACKFILL_SQL)
    op.execute(GUARD_SQL)


def downgrade() -> None:
    op.execute(GUARD_BEFORE_SQL)
    op.execute("DROP INDEX ingest.stripe_events_customer_created")
    op.execute("ALTER TABLE ingest.stripe_events DROP COLUMN stripe_customer_id")
