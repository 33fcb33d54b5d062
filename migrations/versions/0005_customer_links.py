"""ledger schema: explicit links between Stripe customers and tenants (operator input).

Revision ID: 0005_customer_links
Revises: 0004_ledger_query_support
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from alembic import op

revision = "0005_customer_links"
down_revision = "0004_ledger_query_support"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# Some Stripe customers carry no ``metadata.tenant_id`` (or a wrong one); an operator or the
# host application then links them to a tenant explicitly (DirectoryService.LinkStripeCustomer).
# The account of a Stripe customer becomes
#
#     COALESCE(customer_links.tenant_id, accounts.tenant_id (metadata), stripe_customer_id)
#
# The explicit link wins over the metadata: metadata is whatever the host app once wrote into
# Stripe (possibly stale, copied between customers, or simply wrong), while a link is a later,
# deliberate decision by someone who looked; if metadata won, a link could never correct it.
#
# A link is operator input, NOT Stripe history: it lives beside the archive, is never written
# by the projection, and a replay never touches it. The ledger (billing_events, accounts,
# subscriptions, ...) stays a pure function of the archive; the query_* read models are a pure
# function of the ledger tables PLUS this table (a full ``ledger.query_support_rebuild()``
# gives the same rows as the triggers, whatever the order of link changes and events).
# billing_events.tenant_id keeps the payload's metadata tenant (history); the link is applied
# when an account is resolved (query_accounts, the event/invoice lists, GetBillingEvent).
#
# Changes to links refresh the affected accounts (the link's old and new tenant and the
# customer's metadata / own-id account) in the same transaction, through a statement-level
# trigger, like every other source table of query_accounts. Only query_accounts depends on
# the customer -> account mapping; the other query tables are keyed by subscription, invoice
# or day.
TABLES_SQL = """
CREATE TABLE ledger.customer_links (
    stripe_customer_id text PRIMARY KEY
        CONSTRAINT customer_links_customer_present CHECK (btrim(stripe_customer_id) <> ''),
    tenant_id text NOT NULL CONSTRAINT customer_links_tenant_present CHECK (btrim(tenant_id) <> ''),
    linked_at timestamptz NOT NULL DEFAULT now(),
    linked_by text,
    note text
);
CREATE INDEX customer_links_tenant ON ledger.customer_links (tenant_id, stripe_customer_id);
"""

FUNCTIONS_SQL = r"""
-- The Stripe customers (accounts rows) of one account, with the account's effective tenant:
-- the customers explicitly linked to it, plus the unlinked customers whose metadata tenant
-- (or, without one, their own id) is the account id. Two index lookups per account.
CREATE FUNCTION ledger.query_account_members(p_account text)
RETURNS TABLE (stripe_customer_id text, tenant_id text, name text, email text, currency text,
               deleted_at timestamptz, stripe_created_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT a.stripe_customer_id, l.tenant_id, a.name, a.email, a.currency, a.deleted_at,
           a.stripe_created_at
    FROM ledger.customer_links l
    JOIN ledger.accounts a ON a.stripe_customer_id = l.stripe_customer_id
    WHERE l.tenant_id = p_account
    UNION ALL
    SELECT a.stripe_customer_id, a.tenant_id, a.name, a.email, a.currency, a.deleted_at,
           a.stripe_created_at
    FROM ledger.accounts a
    WHERE COALESCE(a.tenant_id, a.stripe_customer_id) = p_account
      AND NOT EXISTS (SELECT 1 FROM ledger.customer_links l
                      WHERE l.stripe_customer_id = a.stripe_customer_id)
$$;

-- Account ids of Stripe customers (customers without an accounts row have none yet).
CREATE OR REPLACE FUNCTION ledger.query_account_ids(p_customers text[]) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(array_agg(DISTINCT COALESCE(l.tenant_id, a.tenant_id, a.stripe_customer_id)),
                    '{}')
    FROM ledger.accounts a JOIN unnest(p_customers) AS k(id) ON a.stripe_customer_id = k.id
    LEFT JOIN ledger.customer_links l ON l.stripe_customer_id = a.stripe_customer_id
$$;

CREATE OR REPLACE FUNCTION ledger.query_refresh_accounts(p_ids text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    p_ids := ARRAY(SELECT DISTINCT k FROM unnest(p_ids) AS u(k) WHERE k IS NOT NULL);
    IF cardinality(p_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM ledger.query_lock(74001, p_ids);
    DELETE FROM ledger.query_accounts t USING unnest(p_ids) AS k(id) WHERE t.account_id = k.id;
    INSERT INTO ledger.query_accounts (
        account_id, tenant_id, stripe_customer_ids, primary_customer_id, name, email,
        created_at, deleted_at, unsynced, drift_detected, subscription_id, plan, status,
        renewal_at, currency, committed_mrr, forward_mrr, mixed_currency)
    SELECT
        ids.account_id,
        COALESCE(t.tenant_id, pc.tenant_id),
        COALESCE(c.customers, '{}'),
        pc.stripe_customer_id,
        COALESCE(NULLIF(t.name, ''), NULLIF(pc.name, ''), ids.account_id),
        pc.email,
        COALESCE(t.created_at, c.first_created),
        CASE WHEN t.tenant_id IS NOT NULL THEN t.deleted_at
             WHEN NOT c.any_live THEN c.last_deleted END,
        NOT COALESCE(c.any_live, false),
        COALESCE(d.drift, false),
        ps.subscription_id,
        COALESCE(ps.plan, ''),
        COALESCE(ps.status, ''),
        CASE WHEN ps.live AND NOT ps.cancel_at_period_end THEN ps.current_period_end END,
        COALESCE(ps.currency, pc.currency),
        COALESCE(m.committed, 0),
        COALESCE(m.forward, 0),
        COALESCE(m.mixed, false)
    FROM unnest(p_ids) AS ids(account_id)
    LEFT JOIN ledger.tenants t ON t.tenant_id = ids.account_id
    LEFT JOIN LATERAL (
        SELECT array_agg(a.stripe_customer_id ORDER BY a.stripe_customer_id) AS customers,
               count(*) AS n,
               bool_or(a.deleted_at IS NULL) AS any_live,
               max(a.deleted_at) AS last_deleted,
               min(a.stripe_created_at) AS first_created
        FROM ledger.query_account_members(ids.account_id) a
    ) c ON true
    LEFT JOIN LATERAL (
        SELECT a.stripe_customer_id, a.tenant_id, a.name, a.email, a.currency
        FROM ledger.query_account_members(ids.account_id) a
        ORDER BY (a.deleted_at IS NULL) DESC, a.stripe_created_at DESC NULLS LAST,
                 a.stripe_customer_id DESC
        LIMIT 1
    ) pc ON true
    LEFT JOIN LATERAL (
        SELECT s.subscription_id, s.plan, s.status, s.currency, s.current_period_end,
               s.cancel_at_period_end,
               (COALESCE(s.status, '') NOT IN ('canceled', 'incomplete_expired')
                AND s.ended_at IS NULL) AS live
        FROM ledger.subscriptions s
        WHERE s.stripe_customer_id = ANY(c.customers)
        ORDER BY (COALESCE(s.status, '') NOT IN ('canceled', 'incomplete_expired')
                  AND s.ended_at IS NULL) DESC,
                 s.state_event_created DESC, s.subscription_id DESC
        LIMIT 1
    ) ps ON true
    LEFT JOIN LATERAL (
        SELECT sum(s.committed_mrr) FILTER (WHERE s.currency = ps.currency) AS committed,
               sum(s.forward_mrr) FILTER (WHERE s.currency = ps.currency) AS forward,
               bool_or(s.currency IS DISTINCT FROM ps.currency
                       AND (s.committed_mrr <> 0 OR s.forward_mrr <> 0)) AS mixed
        FROM ledger.subscriptions s
        WHERE s.stripe_customer_id = ANY(c.customers)
    ) m ON true
    LEFT JOIN LATERAL (
        SELECT EXISTS (
                   SELECT 1 FROM ledger.billing_events b
                   WHERE b.stripe_customer_id = ANY(c.customers) AND b.drift_detected)
               OR EXISTS (
                   SELECT 1 FROM ledger.billing_events b
                   WHERE b.tenant_id = ids.account_id AND b.drift_detected
                     AND NOT EXISTS (
                         SELECT 1 FROM ledger.customer_links l
                         WHERE l.stripe_customer_id = b.stripe_customer_id
                           AND l.tenant_id <> ids.account_id)) AS drift
    ) d ON true
    WHERE t.tenant_id IS NOT NULL OR c.n > 0;
END $$;

CREATE OR REPLACE FUNCTION ledger.query_support_rebuild() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE ledger.query_accounts, ledger.query_mrr_steps, ledger.query_mrr_daily,
             ledger.query_invoice_rows, ledger.query_revenue_daily, ledger.query_event_daily;
    PERFORM ledger.query_refresh_accounts(ARRAY(
        SELECT COALESCE(l.tenant_id, a.tenant_id, a.stripe_customer_id) FROM ledger.accounts a
        LEFT JOIN ledger.customer_links l ON l.stripe_customer_id = a.stripe_customer_id
        UNION SELECT tenant_id FROM ledger.tenants));
    PERFORM ledger.query_refresh_mrr(ARRAY(
        SELECT DISTINCT subscription_id FROM ledger.billing_events
        WHERE subscription_id IS NOT NULL
          AND (committed_mrr IS NOT NULL OR forward_mrr IS NOT NULL)));
    PERFORM ledger.query_refresh_invoices(ARRAY(SELECT invoice_id FROM ledger.payments));
    INSERT INTO ledger.query_event_daily (day, event_type, has_delta, n)
    SELECT ledger.query_day(occurred_at), event_type, COALESCE(amount_delta, 0) <> 0, count(*)
    FROM ledger.billing_events GROUP BY 1, 2, 3;
    TRUNCATE ledger.query_login_days;
    INSERT INTO ledger.query_login_days (user_id, tenant_key, days)
    SELECT user_id, COALESCE(tenant_id, ''),
           range_agg(daterange(ledger.query_day(at), ledger.query_day(at) + 1))
    FROM ledger.logins WHERE outcome = 'success' GROUP BY 1, 2;
END $$;

-- A customer row's account: its link tenant when linked (the metadata / own-id key is
-- refreshed too, harmlessly, so a row that just lost or gained a link is covered).
CREATE OR REPLACE FUNCTION ledger.query_on_accounts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT COALESCE(tenant_id, stripe_customer_id) FROM new_rows
            UNION SELECT l.tenant_id FROM new_rows n
                JOIN ledger.customer_links l ON l.stripe_customer_id = n.stripe_customer_id));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT COALESCE(tenant_id, stripe_customer_id) FROM new_rows
            UNION SELECT COALESCE(tenant_id, stripe_customer_id) FROM old_rows
            UNION SELECT l.tenant_id FROM new_rows n
                JOIN ledger.customer_links l ON l.stripe_customer_id = n.stripe_customer_id
            UNION SELECT l.tenant_id FROM old_rows o
                JOIN ledger.customer_links l ON l.stripe_customer_id = o.stripe_customer_id));
    ELSE
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT COALESCE(tenant_id, stripe_customer_id) FROM old_rows
            UNION SELECT l.tenant_id FROM old_rows o
                JOIN ledger.customer_links l ON l.stripe_customer_id = o.stripe_customer_id));
    END IF;
    RETURN NULL;
END $$;

-- A link change moves a customer between its link tenant(s) and its metadata / own-id account.
CREATE FUNCTION ledger.query_on_customer_links() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT tenant_id FROM new_rows
            UNION SELECT COALESCE(a.tenant_id, a.stripe_customer_id) FROM new_rows n
                JOIN ledger.accounts a ON a.stripe_customer_id = n.stripe_customer_id));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT tenant_id FROM new_rows UNION SELECT tenant_id FROM old_rows
            UNION SELECT COALESCE(a.tenant_id, a.stripe_customer_id)
                FROM (SELECT stripe_customer_id FROM new_rows
                      UNION SELECT stripe_customer_id FROM old_rows) x
                JOIN ledger.accounts a ON a.stripe_customer_id = x.stripe_customer_id));
    ELSE
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT tenant_id FROM old_rows
            UNION SELECT COALESCE(a.tenant_id, a.stripe_customer_id) FROM old_rows o
                JOIN ledger.accounts a ON a.stripe_customer_id = o.stripe_customer_id));
    END IF;
    RETURN NULL;
END $$;
"""

TRIGGERS_SQL = "\n".join(
    f"CREATE TRIGGER query_customer_links_{action} AFTER {action.upper()}"
    f" ON ledger.customer_links REFERENCING {tables}"
    " FOR EACH STATEMENT EXECUTE FUNCTION ledger.query_on_customer_links();"
    for action, tables in (
        ("insert", "NEW TABLE AS new_rows"),
        ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("delete", "OLD TABLE AS old_rows"),
    )
)


def upgrade() -> None:
    op.execute(TABLES_SQL)
    op.execute(FUNCTIONS_SQL)
    op.execute(TRIGGERS_SQL)
    op.execute("SELECT ledger.query_support_rebuild()")


def _revision_0004_functions() -> str:
    """0004's own function definitions, as CREATE OR REPLACE (its triggers stay in place)."""
    path = Path(__file__).with_name("0004_ledger_query_support.py")
    spec = importlib.util.spec_from_file_location("_ledger_0004", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = f"{module.FUNCTIONS_SQL}\n{module.TRIGGERS_SQL}"
    text = re.sub(r"CREATE TRIGGER .*?;", "", text, flags=re.DOTALL)
    return text.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")


def downgrade() -> None:
    for action in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS query_customer_links_{action} ON ledger.customer_links")
    op.execute(_revision_0004_functions())
    op.execute("DROP FUNCTION ledger.query_on_customer_links()")
    op.execute("DROP FUNCTION ledger.query_account_members(text)")
    op.execute("DROP TABLE ledger.customer_links")
    op.execute("SELECT ledger.query_support_rebuild()")
