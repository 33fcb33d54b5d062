"""drift schema: runs, discrepancies, per-subscription check state, operations audit,
high-water marks, recovery cutoffs and baseline-import progress (issue 8); and the ledger's
Stripe snapshot rows (disaster-recovery cutoff, first-install baseline), which the ledger
owns and writes, created here because issue 8 introduces them.

Revision ID: 0008_drift_schema
Revises: 0007_ledger_money_rules
"""

from __future__ import annotations

from alembic import op

revision = "0008_drift_schema"
down_revision = "0007_ledger_money_rules"
branch_labels = None
depends_on = None

# Written out (not generated from services/drift/tables.py) so this revision never changes
# under later edits of the models; tests/drift checks the two agree.
TABLES_SQL = """
CREATE SCHEMA IF NOT EXISTS drift;

CREATE TABLE drift.runs (
    id text PRIMARY KEY,
    scope text NOT NULL,
    trigger text NOT NULL CONSTRAINT runs_trigger
        CHECK (trigger IN ('schedule', 'manual', 'sync', 'import')),
    status text NOT NULL CONSTRAINT runs_status
        CHECK (status IN ('running', 'finished', 'failed')),
    operator text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    subscriptions_checked bigint NOT NULL DEFAULT 0,
    subscriptions_total bigint NOT NULL DEFAULT 0,
    discrepancies_found bigint NOT NULL DEFAULT 0,
    events_recovered bigint NOT NULL DEFAULT 0,
    stripe_requests bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    error_message text
);
CREATE INDEX runs_started ON drift.runs (started_at DESC, id DESC);

-- One row per (kind, object, field) finding. While open (resolved_at IS NULL) a later pass
-- that sees it again only bumps last_seen_at; the fingerprint keeps it unique.
CREATE TABLE drift.discrepancies (
    id bigserial PRIMARY KEY,
    fingerprint text NOT NULL,
    kind text NOT NULL CONSTRAINT discrepancies_kind CHECK (kind IN (
        'MissingEvent', 'MissingHistoricalEvent', 'MissingHistoricalEventUnrecoverable',
        'UnclassifiedStripeEvent', 'UnsupportedStripeApiVersion',
        'StripeEventPayloadDivergence', 'SubscriptionStateMismatch', 'ExtraEvent')),
    severity text NOT NULL CONSTRAINT discrepancies_severity
        CHECK (severity IN ('Warning', 'Critical')),
    account_id text,
    subscription_id text,
    stripe_event_id text,
    stripe_object_id text,
    field text,
    ledger_value text,
    stripe_value text,
    detail text,
    run_id text REFERENCES drift.runs (id),
    detected_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text,
    acknowledgement_note text
);
CREATE UNIQUE INDEX discrepancies_open_fingerprint ON drift.discrepancies (fingerprint)
    WHERE resolved_at IS NULL;
CREATE INDEX discrepancies_account ON drift.discrepancies (account_id, id DESC);
CREATE INDEX discrepancies_subscription ON drift.discrepancies (subscription_id, id DESC);
CREATE INDEX discrepancies_open ON drift.discrepancies (id DESC)
    WHERE resolved_at IS NULL AND acknowledged_at IS NULL;

CREATE TABLE drift.subscription_checks (
    subscription_id text PRIMARY KEY,
    account_id text,
    stripe_customer_id text,
    has_drift_detected boolean NOT NULL DEFAULT false,
    drift_checked_at timestamptz NOT NULL,
    last_run_id text REFERENCES drift.runs (id)
);

-- Per account: the banner's flags, answered from this table alone.
CREATE TABLE drift.accounts (
    account_id text PRIMARY KEY,
    stripe_customer_id text,
    has_drift_detected boolean NOT NULL DEFAULT false,
    checked_at timestamptz,
    synced_at timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text,
    acknowledgement_note text
);
CREATE INDEX accounts_drift ON drift.accounts (account_id) WHERE has_drift_detected;
CREATE INDEX accounts_never_synced ON drift.accounts (account_id) WHERE synced_at IS NULL;

CREATE TABLE drift.operations (
    id bigserial PRIMARY KEY,
    operation text NOT NULL,
    target text NOT NULL,
    operator text NOT NULL,
    parameters jsonb NOT NULL DEFAULT '{}'::jsonb,
    outcome text NOT NULL CONSTRAINT operations_outcome
        CHECK (outcome IN ('succeeded', 'failed')),
    error text,
    idempotency_key text,
    stripe_object_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operations_target ON drift.operations (target, id DESC);

-- Incremental passes: events.list is read from the newest `created` seen (minus a margin).
CREATE TABLE drift.high_water_marks (
    name text PRIMARY KEY,
    stripe_created bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE drift.recovery_cutoffs (
    subscription_id text PRIMARY KEY,
    cutoff timestamptz NOT NULL,
    snapshot_id text NOT NULL,
    operator text NOT NULL,
    note text,
    kind text NOT NULL CONSTRAINT recovery_cutoffs_kind
        CHECK (kind IN ('cutoff', 'baseline')),
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


# A snapshot is a row of its own kind, never a Stripe event: no billing_events row, and the
# read-model rows it seeds carry state_event_id = 'snapshot:<id>'. Append-only like the archive.
LEDGER_SQL = """
CREATE TABLE ledger.stripe_snapshots (
    snapshot_id text PRIMARY KEY,
    kind text NOT NULL CONSTRAINT stripe_snapshots_kind CHECK (kind IN ('cutoff', 'baseline')),
    object_type text NOT NULL CONSTRAINT stripe_snapshots_object_type
        CHECK (object_type IN ('subscription', 'customer')),
    object_id text NOT NULL,
    stripe_customer_id text,
    taken_at timestamptz NOT NULL,
    api_version text NOT NULL,
    payload bytea NOT NULL,
    operator text NOT NULL,
    note text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_snapshots_object ON ledger.stripe_snapshots (object_id, taken_at);

CREATE FUNCTION ledger.stripe_snapshots_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger.stripe_snapshots is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER stripe_snapshots_append_only BEFORE UPDATE OR DELETE ON ledger.stripe_snapshots
    FOR EACH ROW EXECUTE FUNCTION ledger.stripe_snapshots_guard();
CREATE TRIGGER stripe_snapshots_no_truncate BEFORE TRUNCATE ON ledger.stripe_snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.stripe_snapshots_guard();
"""


def upgrade() -> None:
    """Create the drift schema (drift writes nothing outside it) and the ledger's snapshots."""
    op.execute(TABLES_SQL)
    op.execute(LEDGER_SQL)


def downgrade() -> None:
    """Drop the drift schema and the snapshot table."""
    op.execute("DROP TABLE IF EXISTS ledger.stripe_snapshots")
    op.execute("DROP FUNCTION IF EXISTS ledger.stripe_snapshots_guard()")
    op.execute("DROP SCHEMA IF EXISTS drift CASCADE")
