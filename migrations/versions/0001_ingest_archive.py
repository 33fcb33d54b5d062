"""ingest schema: append-only Stripe event archive, divergence log.

Revision ID: 0001_ingest_archive
Revises:
"""

from __future__ import annotations

from alembic import op

revision = "0001_ingest_archive"
down_revision = None
branch_labels = None
depends_on = None

# The database, not only the code, keeps history append-only: payload columns never change,
# published_at / recovered_at are write-once, rows are never deleted or truncated.
# Written out (not generated from the models) so this revision never changes under later edits.
TABLES_SQL = """
CREATE TABLE ingest.stripe_events (
    archive_seq bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    event_type text NOT NULL,
    api_version text,
    stripe_created_at timestamptz NOT NULL,
    livemode boolean NOT NULL,
    account text,
    payload bytea NOT NULL,
    payload_sha256 bytea NOT NULL
        CONSTRAINT stripe_events_sha256_len CHECK (octet_length(payload_sha256) = 32),
    received_at timestamptz NOT NULL DEFAULT now(),
    recovery_source text NOT NULL CONSTRAINT stripe_events_recovery_source
        CHECK (recovery_source IN ('webhook', 'events_list')),
    recovered_at timestamptz,
    published_at timestamptz
);
CREATE INDEX stripe_events_created_order ON ingest.stripe_events (stripe_created_at, event_id);
CREATE INDEX stripe_events_unpublished ON ingest.stripe_events (archive_seq)
    WHERE published_at IS NULL;
CREATE INDEX stripe_events_type_created ON ingest.stripe_events (event_type, stripe_created_at);

CREATE TABLE ingest.payload_divergences (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL,
    original_sha256 bytea NOT NULL,
    divergent_sha256 bytea NOT NULL,
    divergent_payload bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, divergent_sha256)
);
CREATE INDEX payload_divergences_event ON ingest.payload_divergences (event_id);
"""

APPEND_ONLY_SQL = """
CREATE FUNCTION ingest.stripe_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER stripe_events_no_update BEFORE UPDATE ON ingest.stripe_events
    FOR EACH ROW EXECUTE FUNCTION ingest.stripe_events_guard();
CREATE TRIGGER stripe_events_no_delete BEFORE DELETE ON ingest.stripe_events
    FOR EACH ROW EXECUTE FUNCTION ingest.stripe_events_guard();
CREATE TRIGGER stripe_events_no_truncate BEFORE TRUNCATE ON ingest.stripe_events
    FOR EACH STATEMENT EXECUTE FUNCTION ingest.stripe_events_guard();

CREATE FUNCTION ingest.divergences_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ingest.payload_divergences is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER payload_divergences_append_only BEFORE UPDATE OR DELETE
    ON ingest.payload_divergences FOR EACH ROW EXECUTE FUNCTION ingest.divergences_guard();
CREATE TRIGGER payload_divergences_no_truncate BEFORE TRUNCATE ON ingest.payload_divergences
    FOR EACH STATEMENT EXECUTE FUNCTION ingest.divergences_guard();
"""


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS ingest")
    op.execute(TABLES_SQL)
    op.execute(APPEND_ONLY_SQL)


def downgrade() -> None:
    op.execute("DROP SCHEMA ingest CASCADE")
