"""gateway schema: operators, sessions, API tokens, login attempts, audit log (issue 9).

Revision ID: 0009_gateway_schema
Revises: 0008_drift_schema
"""

from __future__ import annotations

from alembic import op

revision = "0009_gateway_schema"
down_revision = "0008_drift_schema"
branch_labels = None
depends_on = None

# Written out (not generated from services/backoffice_gateway/store/tables.py) so this
# revision never changes under later edits of the models.
#
# Credentials are stored only as hashes: scrypt for passwords, SHA-256 for the random
# session ids and API tokens (high-entropy secrets need no slow hash). The audit log is
# append-only, like the billing history: a trigger refuses UPDATE, DELETE and TRUNCATE, so an
# admin cannot erase the trace of what they did through the application.
UPGRADE_SQL = """
CREATE SCHEMA IF NOT EXISTS gateway;

CREATE TABLE gateway.operators (
    id bigserial PRIMARY KEY,
    username text NOT NULL UNIQUE
        CONSTRAINT operators_username_form CHECK (username ~ '^[a-z0-9][a-z0-9._@-]{0,63}$'),
    password_hash text NOT NULL,
    role text NOT NULL CONSTRAINT operators_role CHECK (role IN ('viewer', 'admin')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    utc_offset_minutes integer
        CONSTRAINT operators_offset CHECK (utc_offset_minutes BETWEEN -840 AND 840)
);

CREATE TABLE gateway.sessions (
    id_hash text PRIMARY KEY,
    operator_id bigint NOT NULL REFERENCES gateway.operators (id),
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    ip text,
    user_agent text
);
CREATE INDEX sessions_operator ON gateway.sessions (operator_id);

CREATE TABLE gateway.api_tokens (
    id bigserial PRIMARY KEY,
    operator_id bigint NOT NULL REFERENCES gateway.operators (id),
    name text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    prefix text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX api_tokens_operator ON gateway.api_tokens (operator_id);

CREATE TABLE gateway.login_attempts (
    id bigserial PRIMARY KEY,
    username text NOT NULL,
    ip text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    succeeded boolean NOT NULL
);
CREATE INDEX login_attempts_username ON gateway.login_attempts (username, at);
CREATE INDEX login_attempts_ip ON gateway.login_attempts (ip, at);

CREATE TABLE gateway.audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    operator_id bigint,
    operator text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}'::jsonb,
    result text NOT NULL
        CONSTRAINT audit_result CHECK (result IN ('succeeded', 'failed', 'refused')),
    detail text NOT NULL DEFAULT '',
    ip text
);
CREATE INDEX audit_log_at ON gateway.audit_log (at DESC, id DESC);
CREATE INDEX audit_log_target ON gateway.audit_log (target, at DESC);

CREATE FUNCTION gateway.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'gateway.audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON gateway.audit_log
    FOR EACH ROW EXECUTE FUNCTION gateway.audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON gateway.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION gateway.audit_log_append_only();
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL)


def downgrade() -> None:
    op.execute("DROP SCHEMA gateway CASCADE")
