"""ledger schema: the tenant/user directory (tenants, users, memberships, logins, sessions).

Revision ID: 0003_ledger_directory
Revises: 0002_ledger_core
"""

from __future__ import annotations

from alembic import op

revision = "0003_ledger_directory"
down_revision = "0002_ledger_core"
branch_labels = None
depends_on = None

# Written out (not generated from services/ledger/directory/tables.py) so this revision never
# changes under later edits. Only the directory's own tables: the ledger core owns the rest of
# the schema. Tenants join billing accounts by tenant_id value, deliberately without a foreign
# key, so either side can be fed first.
TABLES_SQL = """
CREATE TABLE ledger.tenants (
    tenant_id text PRIMARY KEY CONSTRAINT tenants_id_present CHECK (tenant_id <> ''),
    name text NOT NULL,
    plan_hint text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX tenants_live_name ON ledger.tenants (lower(name)) WHERE deleted_at IS NULL;

CREATE TABLE ledger.users (
    user_id text PRIMARY KEY CONSTRAINT users_id_present CHECK (user_id <> ''),
    email text NOT NULL CONSTRAINT users_email_lower CHECK (email = lower(email) AND email <> ''),
    first_name text NOT NULL DEFAULT '',
    last_name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_unique UNIQUE (email)
);
CREATE INDEX users_email_order ON ledger.users (email, user_id);
CREATE INDEX users_created_order ON ledger.users (created_at, user_id);

CREATE TABLE ledger.memberships (
    user_id text NOT NULL REFERENCES ledger.users (user_id),
    tenant_id text NOT NULL REFERENCES ledger.tenants (tenant_id),
    role text NOT NULL CONSTRAINT memberships_role
        CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    status text NOT NULL CONSTRAINT memberships_status
        CHECK (status IN ('active', 'inactive', 'pending')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, tenant_id)
);
CREATE INDEX memberships_tenant ON ledger.memberships (tenant_id, user_id);

CREATE TABLE ledger.logins (
    seq bigserial PRIMARY KEY,
    login_id text CONSTRAINT logins_login_id_unique UNIQUE,
    user_id text NOT NULL REFERENCES ledger.users (user_id),
    tenant_id text REFERENCES ledger.tenants (tenant_id),
    at timestamptz NOT NULL,
    method text NOT NULL CONSTRAINT logins_method
        CHECK (method IN ('password', 'sso', 'magic_link', 'oauth', 'api')),
    outcome text NOT NULL CONSTRAINT logins_outcome
        CHECK (outcome IN ('success', 'failure', 'locked')),
    ip inet,
    user_agent text NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX logins_user_at ON ledger.logins (user_id, at);
CREATE INDEX logins_success_at ON ledger.logins (at, user_id) WHERE outcome = 'success';

CREATE TABLE ledger.sessions (
    session_id text PRIMARY KEY CONSTRAINT sessions_id_present CHECK (session_id <> ''),
    user_id text NOT NULL REFERENCES ledger.users (user_id),
    started_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    ip inet,
    user_agent text NOT NULL DEFAULT '',
    revoked_at timestamptz,
    revocation_reason text,
    CONSTRAINT sessions_seen_after_start CHECK (last_seen_at >= started_at)
);
CREATE INDEX sessions_user_seen ON ledger.sessions (user_id, last_seen_at);
CREATE INDEX sessions_last_seen ON ledger.sessions (last_seen_at);
"""

# Logins are an audit trail: the database refuses to change or remove them.
APPEND_ONLY_SQL = """
CREATE FUNCTION ledger.directory_logins_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger.logins is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER logins_append_only BEFORE UPDATE OR DELETE ON ledger.logins
    FOR EACH ROW EXECUTE FUNCTION ledger.directory_logins_guard();
CREATE TRIGGER logins_no_truncate BEFORE TRUNCATE ON ledger.logins
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.directory_logins_guard();
"""


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS ledger")
    op.execute(TABLES_SQL)
    op.execute(APPEND_ONLY_SQL)


def downgrade() -> None:
    # Only this revision's objects: the schema belongs to the ledger core as well.
    op.execute(
        "DROP TABLE ledger.sessions, ledger.logins, ledger.memberships, ledger.users, "
        "ledger.tenants"
    )
    op.execute("DROP FUNCTION ledger.directory_logins_guard()")
