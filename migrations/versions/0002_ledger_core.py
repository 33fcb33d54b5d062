"""ledger schema: append-only billing_events, read models, unsupported events, dead letters.

Revision ID: 0002_ledger_core
Revises: 0001_ingest_archive
"""

from __future__ import annotations

from alembic import op

revision = "0002_ledger_core"
down_revision = "0001_ingest_archive"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# Every read-model table is a pure function of the archive: snapshot columns are written only
# when their event's (stripe created, event id) is newer than the stored version
# (state_event_created, state_event_id); a few columns are monotone (LEAST/GREATEST); the
# "derived" columns (payment method on accounts, refund totals on payments, scheduled change
# on subscriptions) are recomputed from the other tables. VerifyLedger rebuilds all of them
# into a scratch schema and diffs. dead_letters is operator data and is not rebuilt.
EVENT_TYPES = (
    "SubscriptionCreated",
    "SubscriptionRenewed",
    "SubscriptionUpgraded",
    "SubscriptionDowngradeScheduled",
    "SubscriptionDowngradeCancelled",
    "SubscriptionDowngraded",
    "SubscriptionCancelled",
    "SubscriptionReactivated",
    "SubscriptionExpired",
    "SubscriptionImmediatelyCancelled",
    "SubscriptionSuspended",
    "SubscriptionPastDue",
    "PaymentFailed",
    "PaymentRecovered",
    "PaymentRefunded",
    "BillingInfoAdded",
    "BillingInfoUpdated",
    "PaymentMethodUpdated",
    "NoOp",
    "Unclassified",
)
_TYPES_SQL = ", ".join(f"'{name}'" for name in EVENT_TYPES)

BILLING_EVENTS_SQL = """
CREATE TABLE ledger.billing_events (
    id bigserial PRIMARY KEY,
    stripe_event_id text NOT NULL UNIQUE,
    stripe_event_type text NOT NULL,
    event_type text NOT NULL CONSTRAINT billing_events_event_type
        CHECK (event_type IN (@TYPES@)),
    tenant_id text,
    stripe_customer_id text,
    subscription_id text,
    from_plan text,
    to_plan text,
    previous_amount bigint,
    new_amount bigint,
    amount_delta bigint,
    refund_amount bigint,
    committed_mrr bigint,
    forward_mrr bigint,
    currency text CONSTRAINT billing_events_currency CHECK (currency ~ '^[A-Z]{3}$'),
    occurred_at timestamptz NOT NULL,
    reason text,
    flags text[] NOT NULL DEFAULT '{}',
    drift_detected boolean GENERATED ALWAYS AS (event_type = 'Unclassified') STORED,
    api_version text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_events_customer_time
    ON ledger.billing_events (stripe_customer_id, occurred_at, stripe_event_id);
CREATE INDEX billing_events_tenant_time ON ledger.billing_events (tenant_id, occurred_at)
    WHERE tenant_id IS NOT NULL;
CREATE INDEX billing_events_subscription_time
    ON ledger.billing_events (subscription_id, occurred_at, stripe_event_id);
CREATE INDEX billing_events_time ON ledger.billing_events (occurred_at, stripe_event_id);
CREATE INDEX billing_events_type_time ON ledger.billing_events (event_type, occurred_at);
CREATE INDEX billing_events_drift ON ledger.billing_events (occurred_at) WHERE drift_detected;

-- committed_mrr is NULL on rows whose payload carries no subscription state (invoices,
-- charges, ...). "MRR as of the event" for such a row is the latest non-NULL committed_mrr of
-- the same subscription at or before (occurred_at, stripe_event_id): a function of the set
-- of rows, never of the order they arrived in.
CREATE FUNCTION ledger.committed_mrr_as_of(
    p_subscription_id text, p_occurred_at timestamptz, p_stripe_event_id text
) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT committed_mrr FROM ledger.billing_events
    WHERE subscription_id = p_subscription_id
      AND committed_mrr IS NOT NULL
      AND (occurred_at, stripe_event_id) <= (p_occurred_at, p_stripe_event_id)
    ORDER BY occurred_at DESC, stripe_event_id DESC
    LIMIT 1
$$;
""".replace("@TYPES@", _TYPES_SQL)

APPEND_ONLY_SQL = """
CREATE FUNCTION ledger.billing_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'ledger.billing_events is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'ledger.billing_events is append-only: rows cannot change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER billing_events_no_update BEFORE UPDATE ON ledger.billing_events
    FOR EACH ROW EXECUTE FUNCTION ledger.billing_events_guard();
CREATE TRIGGER billing_events_no_delete BEFORE DELETE ON ledger.billing_events
    FOR EACH ROW EXECUTE FUNCTION ledger.billing_events_guard();
CREATE TRIGGER billing_events_no_truncate BEFORE TRUNCATE ON ledger.billing_events
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.billing_events_guard();
"""

READ_MODELS_SQL = """
CREATE TABLE ledger.unsupported_events (
    stripe_event_id text PRIMARY KEY,
    stripe_event_type text,
    api_version text,
    reason text NOT NULL,
    occurred_at timestamptz,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unsupported_events_time ON ledger.unsupported_events (occurred_at);

CREATE TABLE ledger.accounts (
    stripe_customer_id text PRIMARY KEY,
    tenant_id text,
    name text,
    email text,
    phone text,
    address jsonb,
    address_country text,
    tax_exempt text,
    currency text CONSTRAINT accounts_currency CHECK (currency ~ '^[A-Z]{3}$'),
    default_payment_method_id text,
    delinquent boolean,
    stripe_created_at timestamptz,
    deleted_at timestamptz,
    tax_id text,
    payment_method_brand text,
    payment_method_last4 text,
    payment_method_exp_month integer,
    payment_method_exp_year integer,
    state_event_created timestamptz NOT NULL,
    state_event_id text NOT NULL
);
CREATE INDEX accounts_tenant ON ledger.accounts (tenant_id);
CREATE INDEX accounts_live_name ON ledger.accounts (name) WHERE deleted_at IS NULL;
CREATE INDEX accounts_created ON ledger.accounts (stripe_created_at);

CREATE TABLE ledger.payment_methods (
    payment_method_id text PRIMARY KEY,
    stripe_customer_id text,
    type text,
    brand text,
    last4 text,
    exp_month integer,
    exp_year integer,
    state_event_created timestamptz NOT NULL,
    state_event_id text NOT NULL
);
CREATE INDEX payment_methods_customer ON ledger.payment_methods (stripe_customer_id);

CREATE TABLE ledger.tax_ids (
    tax_id text PRIMARY KEY,
    stripe_customer_id text,
    type text,
    value text,
    deleted boolean NOT NULL DEFAULT false,
    state_event_created timestamptz NOT NULL,
    state_event_id text NOT NULL
);
CREATE INDEX tax_ids_customer ON ledger.tax_ids (stripe_customer_id);

CREATE TABLE ledger.subscriptions (
    subscription_id text PRIMARY KEY,
    stripe_customer_id text,
    status text,
    plan text,
    price_id text,
    product_id text,
    unit_amount bigint,
    quantity integer,
    "interval" text,
    interval_count integer,
    currency text CONSTRAINT subscriptions_currency CHECK (currency ~ '^[A-Z]{3}$'),
    current_period_start timestamptz,
    current_period_end timestamptz,
    trial_start timestamptz,
    trial_end timestamptz,
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    cancel_at timestamptz,
    canceled_at timestamptz,
    ended_at timestamptz,
    cancellation_reason text,
    paused boolean NOT NULL DEFAULT false,
    schedule_id text,
    pending_plan text,
    pending_mrr bigint,
    pending_change_at timestamptz,
    committed_mrr bigint NOT NULL DEFAULT 0,
    forward_mrr bigint NOT NULL DEFAULT 0,
    mrr_flags text[] NOT NULL DEFAULT '{}',
    subscribed_since timestamptz,
    scheduled_plan text,
    scheduled_mrr bigint,
    scheduled_change_at timestamptz,
    state_event_created timestamptz NOT NULL,
    state_event_id text NOT NULL
);
CREATE INDEX subscriptions_customer ON ledger.subscriptions (stripe_customer_id);
CREATE INDEX subscriptions_status ON ledger.subscriptions (status);
CREATE INDEX subscriptions_plan ON ledger.subscriptions (plan);
CREATE INDEX subscriptions_period_end ON ledger.subscriptions (current_period_end);

CREATE TABLE ledger.subscription_schedules (
    schedule_id text PRIMARY KEY,
    subscription_id text,
    stripe_customer_id text,
    status text,
    current_plan text,
    next_plan text,
    next_mrr bigint,
    next_phase_start timestamptz,
    released_at timestamptz,
    canceled_at timestamptz,
    state_event_created timestamptz NOT NULL,
    state_event_id text NOT NULL
);
CREATE INDEX subscription_schedules_subscription
    ON ledger.subscription_schedules (subscription_id);

CREATE TABLE ledger.payments (
    invoice_id text PRIMARY KEY,
    stripe_customer_id text,
    subscription_id text,
    number text,
    status text,
    billing_reason text,
    currency text CONSTRAINT payments_currency CHECK (currency ~ '^[A-Z]{3}$'),
    amount_due bigint,
    amount_paid bigint,
    amount_remaining bigint,
    total bigint,
    subtotal bigint,
    tax bigint,
    amount_ex_tax bigint,
    amount_from_credit_balance bigint,
    attempt_count integer,
    hosted_invoice_url text,
    invoice_pdf text,
    period_start timestamptz,
    period_end timestamptz,
    invoice_created timestamptz,
    marked_uncollectible_at timestamptz,
    invoice_charge_id text,
    invoice_payment_intent_id text,
    paid_at timestamptz,
    payment_intent_id text,
    amount_refunded bigint NOT NULL DEFAULT 0,
    refunded_at timestamptz,
    amount_credited bigint NOT NULL DEFAULT 0,
    credit_noted_at timestamptz,
    state_event_created timestamptz NOT NULL,
    state_event_id text NOT NULL
);
CREATE INDEX payments_customer_created ON ledger.payments (stripe_customer_id, invoice_created);
CREATE INDEX payments_subscription ON ledger.payments (subscription_id);
CREATE INDEX payments_paid_at ON ledger.payments (paid_at);
CREATE INDEX payments_payment_intent ON ledger.payments (payment_intent_id);
CREATE INDEX payments_charge ON ledger.payments (invoice_charge_id);

CREATE TABLE ledger.invoice_payments (
    invoice_payment_id text PRIMARY KEY,
    invoice_id text,
    payment_intent_id text,
    charge_id text,
    amount_paid bigint,
    currency text CONSTRAINT invoice_payments_currency CHECK (currency ~ '^[A-Z]{3}$'),
    status text,
    paid_at timestamptz,
    state_event_created timestamptz NOT NULL,
    state_event_id text NOT NULL
);
CREATE INDEX invoice_payments_invoice ON ledger.invoice_payments (invoice_id);

CREATE TABLE ledger.refunds (
    refund_id text PRIMARY KEY,
    charge_id text,
    payment_intent_id text,
    stripe_customer_id text,
    amount bigint,
    currency text CONSTRAINT refunds_currency CHECK (currency ~ '^[A-Z]{3}$'),
    status text,
    reason text,
    refund_created timestamptz,
    state_event_created timestamptz NOT NULL,
    state_event_id text NOT NULL
);
CREATE INDEX refunds_charge ON ledger.refunds (charge_id);
CREATE INDEX refunds_payment_intent ON ledger.refunds (payment_intent_id);
CREATE INDEX refunds_created ON ledger.refunds (refund_created);

CREATE TABLE ledger.credit_notes (
    credit_note_id text PRIMARY KEY,
    invoice_id text,
    stripe_customer_id text,
    amount bigint,
    total bigint,
    currency text CONSTRAINT credit_notes_currency CHECK (currency ~ '^[A-Z]{3}$'),
    status text,
    type text,
    reason text,
    refund_ids text[] NOT NULL DEFAULT '{}',
    refunded_amount bigint,
    post_payment_amount bigint,
    out_of_band_amount bigint,
    credit_note_created timestamptz,
    voided_at timestamptz,
    state_event_created timestamptz NOT NULL,
    state_event_id text NOT NULL
);
CREATE INDEX credit_notes_invoice ON ledger.credit_notes (invoice_id);
CREATE INDEX credit_notes_created ON ledger.credit_notes (credit_note_created);

CREATE TABLE ledger.dead_letters (
    id bigserial PRIMARY KEY,
    stream_seq bigint UNIQUE,
    subject text NOT NULL,
    stripe_event_id text,
    payload bytea NOT NULL,
    error text NOT NULL,
    deliveries integer NOT NULL,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at timestamptz NOT NULL DEFAULT now(),
    retries integer NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'dead'
        CONSTRAINT dead_letters_status CHECK (status IN ('dead', 'resolved')),
    resolved_at timestamptz
);
CREATE INDEX dead_letters_status ON ledger.dead_letters (status, id);
"""


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS ledger")
    op.execute(BILLING_EVENTS_SQL)
    op.execute(APPEND_ONLY_SQL)
    op.execute(READ_MODELS_SQL)


def downgrade() -> None:
    op.execute("DROP SCHEMA ledger CASCADE")
