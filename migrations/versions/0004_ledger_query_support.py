"""ledger schema: read-side support for the back-office queries (dashboard, lists).

Revision ID: 0004_ledger_query_support
Revises: 0003_ledger_directory
"""

from __future__ import annotations

from alembic import op

revision = "0004_ledger_query_support"
down_revision = "0003_ledger_directory"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# Six derived tables, all prefixed ``query_``, each a pure function of the ledger tables and
# kept current by statement-level AFTER triggers (transition tables, so one batch of the
# projection costs one set-based refresh per statement, not one per row):
#
# * query_accounts      one row per back-office account: the tenant id when the Stripe
#                       customer carries one (or the tenant exists without any customer),
#                       else the Stripe customer id - the same rule as BillingEvent.account_id.
#                       Plan/status/renewal of the primary subscription, MRR sums, flags.
# * query_mrr_steps     per subscription, every billing event at which the subscription's
#                       carried (latest non-NULL, see ledger.committed_mrr_as_of) committed
#                       MRR, forward MRR or currency changed, with the values before it.
# * query_mrr_daily     per UTC day and currency, the change of the summed committed and forward
#                       MRR: the MRR at the end of day D is the sum of the deltas up to D.
# * query_invoice_rows  the invoice list: one row per invoice, per credit note and per refund
#                       that no credit note covers, each with its revenue effect (ex tax).
# * query_revenue_daily per UTC day and currency, the net revenue of query_invoice_rows.
# * query_event_daily   per UTC day, event type and "amount_delta <> 0", the number of
#                       billing_events (exact total counts of the event list without a scan).
# * query_login_days    per user and login tenant ('' for none), the UTC days with a successful
#                       login as a datemultirange: "active users in [day a, day b)" is one
#                       range overlap per row instead of a DISTINCT over every login.
#
# Each refresh function recomputes its rows for a set of keys from the source tables only and
# moves the daily aggregates by (new - old), so the result does not depend on the order in
# which rows arrive. Concurrent writers touching the same keys are serialised by transaction-
# level advisory locks (namespaces 74001..74003, 128 hash buckets each), taken in order. Key
# sets are joined through unnest(), never `= ANY(array)` (a linear search per row for a
# parameter array), so a refresh of 50,000 keys stays a hash or index join. TRUNCATE of a source
# table is not tracked: run ledger.query_support_rebuild() afterwards.
TABLES_SQL = """
CREATE TABLE ledger.query_accounts (
    account_id text PRIMARY KEY,
    tenant_id text,
    stripe_customer_ids text[] NOT NULL DEFAULT '{}',
    primary_customer_id text,
    name text NOT NULL,
    email text,
    created_at timestamptz,
    deleted_at timestamptz,
    unsynced boolean NOT NULL,
    drift_detected boolean NOT NULL,
    subscription_id text,
    plan text NOT NULL,
    status text NOT NULL,
    renewal_at timestamptz,
    currency text,
    committed_mrr bigint NOT NULL,
    forward_mrr bigint NOT NULL,
    mixed_currency boolean NOT NULL
);
CREATE INDEX query_accounts_name ON ledger.query_accounts (lower(name), account_id)
    WHERE deleted_at IS NULL;
CREATE INDEX query_accounts_created ON ledger.query_accounts (created_at, account_id)
    WHERE deleted_at IS NULL;
CREATE INDEX query_accounts_plan ON ledger.query_accounts (plan, account_id)
    WHERE deleted_at IS NULL;
CREATE INDEX query_accounts_status ON ledger.query_accounts (status, account_id)
    WHERE deleted_at IS NULL;
CREATE INDEX query_accounts_renewal ON ledger.query_accounts (renewal_at, account_id)
    WHERE deleted_at IS NULL;
CREATE INDEX query_accounts_customers ON ledger.query_accounts USING gin (stripe_customer_ids);
CREATE INDEX query_accounts_plan_mix ON ledger.query_accounts (plan, currency)
    INCLUDE (committed_mrr, created_at) WHERE deleted_at IS NULL;

CREATE TABLE ledger.query_mrr_steps (
    subscription_id text NOT NULL,
    occurred_at timestamptz NOT NULL,
    stripe_event_id text NOT NULL,
    day date NOT NULL,
    event_type text NOT NULL,
    currency text,
    committed bigint NOT NULL,
    forward bigint NOT NULL,
    prev_currency text,
    prev_committed bigint NOT NULL,
    prev_forward bigint NOT NULL,
    had_mrr_before boolean NOT NULL,
    PRIMARY KEY (subscription_id, occurred_at, stripe_event_id)
);
CREATE INDEX query_mrr_steps_day ON ledger.query_mrr_steps (day)
    INCLUDE (currency, prev_currency, committed, prev_committed, had_mrr_before, event_type);

CREATE TABLE ledger.query_mrr_daily (
    day date NOT NULL,
    currency text NOT NULL,
    committed_delta bigint NOT NULL,
    forward_delta bigint NOT NULL,
    PRIMARY KEY (day, currency)
);

CREATE TABLE ledger.query_invoice_rows (
    row_id text PRIMARY KEY,
    kind text NOT NULL CONSTRAINT query_invoice_rows_kind
        CHECK (kind IN ('invoice', 'credit_note', 'refund')),
    invoice_id text NOT NULL,
    stripe_customer_id text,
    subscription_id text,
    number text,
    status text,
    currency text,
    row_at timestamptz NOT NULL,
    row_day date NOT NULL,
    amount bigint,
    tax bigint,
    amount_ex_tax bigint,
    amount_paid bigint,
    hosted_invoice_url text,
    invoice_pdf text,
    paid_at timestamptz,
    reason text,
    revenue_at timestamptz,
    revenue_day date,
    revenue_amount bigint
);
CREATE INDEX query_invoice_rows_time ON ledger.query_invoice_rows (row_at, row_id);
CREATE INDEX query_invoice_rows_kind_time ON ledger.query_invoice_rows (kind, row_at, row_id);
CREATE INDEX query_invoice_rows_customer
    ON ledger.query_invoice_rows (stripe_customer_id, row_at, row_id);
CREATE INDEX query_invoice_rows_invoice ON ledger.query_invoice_rows (invoice_id);

CREATE TABLE ledger.query_revenue_daily (
    day date NOT NULL,
    currency text NOT NULL,
    amount bigint NOT NULL,
    PRIMARY KEY (day, currency)
);

CREATE TABLE ledger.query_event_daily (
    day date NOT NULL,
    event_type text NOT NULL,
    has_delta boolean NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (day, event_type, has_delta)
);

CREATE TABLE ledger.query_login_days (
    user_id text NOT NULL,
    tenant_key text NOT NULL,
    days datemultirange NOT NULL,
    PRIMARY KEY (user_id, tenant_key)
);

-- Customer -> account key lookups, and the drift flag per customer / tenant (drift rows are rare).
CREATE INDEX query_accounts_key ON ledger.accounts ((COALESCE(tenant_id, stripe_customer_id)));
CREATE INDEX query_billing_events_drift_customer ON ledger.billing_events (stripe_customer_id)
    WHERE drift_detected;
CREATE INDEX query_billing_events_drift_tenant ON ledger.billing_events (tenant_id)
    WHERE drift_detected;
"""

FUNCTIONS_SQL = r"""
-- Serialises refreshes of the same keys: one transaction-level advisory lock per hash bucket
-- (128 buckets, so a refresh of thousands of keys still takes at most 128 locks), in order.
CREATE FUNCTION ledger.query_lock(p_namespace integer, p_keys text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    bucket integer;
BEGIN
    FOR bucket IN
        SELECT DISTINCT abs(hashtext(k) % 128) FROM unnest(p_keys) AS u(k)
        WHERE k IS NOT NULL ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(p_namespace, bucket);
    END LOOP;
END $$;

CREATE FUNCTION ledger.query_day(p_at timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (p_at AT TIME ZONE 'UTC')::date $$;

-- Account ids of Stripe customers (customers without an accounts row have none yet).
CREATE FUNCTION ledger.query_account_ids(p_customers text[]) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(array_agg(DISTINCT COALESCE(a.tenant_id, a.stripe_customer_id)), '{}')
    FROM ledger.accounts a JOIN unnest(p_customers) AS k(id) ON a.stripe_customer_id = k.id
$$;

CREATE FUNCTION ledger.query_refresh_accounts(p_ids text[]) RETURNS void
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
        FROM ledger.accounts a
        WHERE COALESCE(a.tenant_id, a.stripe_customer_id) = ids.account_id
    ) c ON true
    LEFT JOIN LATERAL (
        SELECT a.stripe_customer_id, a.tenant_id, a.name, a.email, a.currency
        FROM ledger.accounts a
        WHERE COALESCE(a.tenant_id, a.stripe_customer_id) = ids.account_id
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
                   WHERE b.tenant_id = ids.account_id AND b.drift_detected) AS drift
    ) d ON true
    WHERE t.tenant_id IS NOT NULL OR c.n > 0;
END $$;

-- Steps of the carried (latest non-NULL) committed MRR, forward MRR and currency of each
-- subscription in p_subs, rebuilt from billing_events; query_mrr_daily moves by new - old.
CREATE FUNCTION ledger.query_refresh_mrr(p_subs text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    p_subs := ARRAY(SELECT DISTINCT k FROM unnest(p_subs) AS u(k) WHERE k IS NOT NULL);
    IF cardinality(p_subs) = 0 THEN
        RETURN;
    END IF;
    PERFORM ledger.query_lock(74002, p_subs);
    WITH old AS (
        DELETE FROM ledger.query_mrr_steps t USING unnest(p_subs) AS k(id)
        WHERE t.subscription_id = k.id
        RETURNING day, currency, committed, forward, prev_currency, prev_committed, prev_forward
    ), contrib AS (
        SELECT day, currency, -committed AS c, -forward AS f FROM old WHERE currency IS NOT NULL
        UNION ALL
        SELECT day, prev_currency, prev_committed, prev_forward FROM old
        WHERE prev_currency IS NOT NULL
    )
    INSERT INTO ledger.query_mrr_daily AS d (day, currency, committed_delta, forward_delta)
    SELECT day, currency, sum(c), sum(f) FROM contrib
    GROUP BY day, currency ORDER BY day, currency
    ON CONFLICT (day, currency) DO UPDATE
        SET committed_delta = d.committed_delta + EXCLUDED.committed_delta,
            forward_delta = d.forward_delta + EXCLUDED.forward_delta;

    WITH ev AS (
        SELECT b.subscription_id, b.occurred_at, b.stripe_event_id, b.event_type,
               b.currency, b.committed_mrr, b.forward_mrr,
               count(b.committed_mrr) OVER w AS cg,
               count(b.forward_mrr) OVER w AS fg,
               count(b.currency) OVER w AS kg
        FROM ledger.billing_events b JOIN unnest(p_subs) AS k(id) ON b.subscription_id = k.id
        WHERE (b.committed_mrr IS NOT NULL OR b.forward_mrr IS NOT NULL)
        WINDOW w AS (PARTITION BY b.subscription_id ORDER BY b.occurred_at, b.stripe_event_id)
    ), carried AS (
        SELECT ev.*,
               COALESCE(first_value(committed_mrr) OVER (PARTITION BY subscription_id, cg
                   ORDER BY occurred_at, stripe_event_id), 0) AS c,
               COALESCE(first_value(forward_mrr) OVER (PARTITION BY subscription_id, fg
                   ORDER BY occurred_at, stripe_event_id), 0) AS f,
               first_value(currency) OVER (PARTITION BY subscription_id, kg
                   ORDER BY occurred_at, stripe_event_id) AS cur
        FROM ev
    ), stepped AS (
        SELECT carried.*,
               COALESCE(lag(c) OVER w2, 0) AS pc,
               COALESCE(lag(f) OVER w2, 0) AS pf,
               lag(cur) OVER w2 AS pcur,
               COALESCE(bool_or(c > 0) OVER (w2 ROWS BETWEEN UNBOUNDED PRECEDING
                                               AND 1 PRECEDING), false) AS had
        FROM carried
        WINDOW w2 AS (PARTITION BY subscription_id ORDER BY occurred_at, stripe_event_id)
    ), ins AS (
        INSERT INTO ledger.query_mrr_steps (
            subscription_id, occurred_at, stripe_event_id, day, event_type, currency,
            committed, forward, prev_currency, prev_committed, prev_forward, had_mrr_before)
        SELECT subscription_id, occurred_at, stripe_event_id, ledger.query_day(occurred_at),
               event_type, cur, c, f, pcur, pc, pf, had
        FROM stepped
        WHERE (c, f, cur) IS DISTINCT FROM (pc, pf, pcur)
        RETURNING day, currency, committed, forward, prev_currency, prev_committed, prev_forward
    ), contrib AS (
        SELECT day, currency, committed AS c, forward AS f FROM ins WHERE currency IS NOT NULL
        UNION ALL
        SELECT day, prev_currency, -prev_committed, -prev_forward FROM ins
        WHERE prev_currency IS NOT NULL
    )
    INSERT INTO ledger.query_mrr_daily AS d (day, currency, committed_delta, forward_delta)
    SELECT day, currency, sum(c), sum(f) FROM contrib
    GROUP BY day, currency ORDER BY day, currency
    ON CONFLICT (day, currency) DO UPDATE
        SET committed_delta = d.committed_delta + EXCLUDED.committed_delta,
            forward_delta = d.forward_delta + EXCLUDED.forward_delta;
END $$;

-- Invoice list rows of the invoices in p_invoices, rebuilt from payments, credit_notes and
-- refunds; query_revenue_daily moves by new - old. Revenue rules (DESIGN.md section 4):
-- a paid invoice adds its amount ex tax on the day it was paid; each credit note (not void)
-- and each refund no credit note covers subtracts on its own day (credit note created ??
-- refund created ?? paid), ex tax pro rata of the invoice (round(gross x ex_tax / total),
-- half away from zero), only for invoices that were paid (nothing to reverse otherwise).
CREATE FUNCTION ledger.query_refresh_invoices(p_invoices text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    p_invoices := ARRAY(SELECT DISTINCT k FROM unnest(p_invoices) AS u(k) WHERE k IS NOT NULL);
    IF cardinality(p_invoices) = 0 THEN
        RETURN;
    END IF;
    PERFORM ledger.query_lock(74003, p_invoices);
    WITH old AS (
        DELETE FROM ledger.query_invoice_rows t USING unnest(p_invoices) AS k(id)
        WHERE t.invoice_id = k.id
        RETURNING revenue_day, currency, revenue_amount
    )
    INSERT INTO ledger.query_revenue_daily AS d (day, currency, amount)
    SELECT revenue_day, currency, -sum(revenue_amount) FROM old
    WHERE revenue_amount IS NOT NULL AND currency IS NOT NULL
    GROUP BY revenue_day, currency ORDER BY revenue_day, currency
    ON CONFLICT (day, currency) DO UPDATE SET amount = d.amount + EXCLUDED.amount;

    WITH p AS (
        SELECT x.*,
               COALESCE(x.amount_ex_tax, x.total - COALESCE(x.tax, 0), x.amount_paid) AS ex_tax,
               COALESCE(x.invoice_created, x.paid_at, x.state_event_created) AS at
        FROM ledger.payments x JOIN unnest(p_invoices) AS k(id) ON x.invoice_id = k.id
    ), notes AS (
        SELECT n.credit_note_id, p.invoice_id, COALESCE(n.stripe_customer_id, p.stripe_customer_id)
                   AS customer, p.subscription_id, p.number, n.status,
               COALESCE(n.currency, p.currency) AS currency,
               COALESCE(n.total, n.amount, 0) AS gross, p.total, p.ex_tax,
               COALESCE(n.credit_note_created,
                        (SELECT max(r.refund_created) FROM ledger.refunds r
                         WHERE r.refund_id = ANY(n.refund_ids))) AS reversed_at,
               p.at, p.paid_at, p.hosted_invoice_url, p.invoice_pdf, n.reason,
               (n.status IS DISTINCT FROM 'void' AND p.paid_at IS NOT NULL) AS counted
        FROM p JOIN ledger.credit_notes n ON n.invoice_id = p.invoice_id
    ), refunds AS (
        SELECT r.refund_id, p.invoice_id, COALESCE(r.stripe_customer_id, p.stripe_customer_id)
                   AS customer, p.subscription_id, p.number, r.status,
               COALESCE(r.currency, p.currency) AS currency,
               COALESCE(r.amount, 0) AS gross, p.total, p.ex_tax, r.refund_created AS reversed_at,
               p.at, p.paid_at, p.hosted_invoice_url, p.invoice_pdf, r.reason,
               ((r.status IS NULL OR r.status NOT IN ('failed', 'canceled'))
                AND p.paid_at IS NOT NULL) AS counted
        FROM p JOIN ledger.refunds r
          ON (r.payment_intent_id IS NOT NULL AND r.payment_intent_id = p.payment_intent_id)
          OR (r.charge_id IS NOT NULL AND r.charge_id = p.invoice_charge_id)
        WHERE NOT EXISTS (
            SELECT 1 FROM ledger.credit_notes n
            WHERE n.invoice_id = p.invoice_id AND r.refund_id = ANY(n.refund_ids))
    ), reversals AS (
        SELECT 'credit_note' AS kind, credit_note_id AS row_id, notes.* FROM notes
        UNION ALL
        SELECT 'refund', refund_id, refunds.* FROM refunds
    ), rows AS (
        SELECT p.invoice_id AS row_id, 'invoice' AS kind, p.invoice_id, p.stripe_customer_id,
               p.subscription_id, p.number, p.status, p.currency, p.at AS row_at,
               p.total AS amount, p.tax, p.ex_tax AS amount_ex_tax, p.amount_paid,
               p.hosted_invoice_url, p.invoice_pdf, p.paid_at, p.billing_reason AS reason,
               p.paid_at AS revenue_at,
               CASE WHEN p.paid_at IS NOT NULL THEN p.ex_tax END AS revenue_amount
        FROM p
        UNION ALL
        SELECT x.row_id, x.kind, x.invoice_id, x.customer, x.subscription_id, x.number,
               x.status, x.currency, COALESCE(x.reversed_at, x.at), -x.gross,
               -(x.gross - x.ex_gross), -x.ex_gross, NULL, x.hosted_invoice_url,
               x.invoice_pdf, x.paid_at, x.reason,
               CASE WHEN x.counted THEN COALESCE(x.reversed_at, x.paid_at) END,
               CASE WHEN x.counted THEN -x.ex_gross END
        FROM (
            SELECT r.*,
                   CASE WHEN r.total > 0 AND r.ex_tax IS NOT NULL
                        THEN round(r.gross::numeric * r.ex_tax / r.total)::bigint
                        ELSE r.gross END AS ex_gross
            FROM reversals r
        ) x
    ), ins AS (
        INSERT INTO ledger.query_invoice_rows (
            row_id, kind, invoice_id, stripe_customer_id, subscription_id, number, status,
            currency, row_at, row_day, amount, tax, amount_ex_tax, amount_paid,
            hosted_invoice_url, invoice_pdf, paid_at, reason, revenue_at, revenue_day,
            revenue_amount)
        SELECT row_id, kind, invoice_id, stripe_customer_id, subscription_id, number, status,
               currency, row_at, ledger.query_day(row_at), amount, tax, amount_ex_tax,
               amount_paid, hosted_invoice_url, invoice_pdf, paid_at, reason, revenue_at,
               ledger.query_day(revenue_at), revenue_amount
        FROM rows
        ON CONFLICT (row_id) DO NOTHING
        RETURNING revenue_day, currency, revenue_amount
    )
    INSERT INTO ledger.query_revenue_daily AS d (day, currency, amount)
    SELECT revenue_day, currency, sum(revenue_amount) FROM ins
    WHERE revenue_amount IS NOT NULL AND currency IS NOT NULL
    GROUP BY revenue_day, currency ORDER BY revenue_day, currency
    ON CONFLICT (day, currency) DO UPDATE SET amount = d.amount + EXCLUDED.amount;
END $$;

-- Everything from scratch (after a TRUNCATE of a source table, or to check the triggers).
CREATE FUNCTION ledger.query_support_rebuild() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE ledger.query_accounts, ledger.query_mrr_steps, ledger.query_mrr_daily,
             ledger.query_invoice_rows, ledger.query_revenue_daily, ledger.query_event_daily;
    PERFORM ledger.query_refresh_accounts(ARRAY(
        SELECT COALESCE(tenant_id, stripe_customer_id) FROM ledger.accounts
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
"""

TRIGGERS_SQL = r"""
CREATE FUNCTION ledger.query_on_billing_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger.query_refresh_mrr(ARRAY(
        SELECT DISTINCT subscription_id FROM new_rows
        WHERE subscription_id IS NOT NULL
          AND (committed_mrr IS NOT NULL OR forward_mrr IS NOT NULL)));
    IF EXISTS (SELECT 1 FROM new_rows WHERE event_type = 'Unclassified') THEN
        PERFORM ledger.query_refresh_accounts(
            ledger.query_account_ids(ARRAY(
                SELECT stripe_customer_id FROM new_rows WHERE event_type = 'Unclassified'))
            || ARRAY(SELECT tenant_id FROM new_rows WHERE event_type = 'Unclassified'));
    END IF;
    INSERT INTO ledger.query_event_daily AS d (day, event_type, has_delta, n)
    SELECT ledger.query_day(occurred_at), event_type, COALESCE(amount_delta, 0) <> 0, count(*)
    FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (day, event_type, has_delta) DO UPDATE SET n = d.n + EXCLUDED.n;
    RETURN NULL;
END $$;
CREATE TRIGGER query_billing_events_insert AFTER INSERT ON ledger.billing_events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.query_on_billing_events();

-- ledger.logins is append-only: inserts are all there is to follow.
CREATE FUNCTION ledger.query_on_logins() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger.query_login_days AS d (user_id, tenant_key, days)
    SELECT user_id, COALESCE(tenant_id, ''),
           range_agg(daterange(ledger.query_day(at), ledger.query_day(at) + 1))
    FROM new_rows WHERE outcome = 'success'
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (user_id, tenant_key) DO UPDATE SET days = d.days + EXCLUDED.days;
    RETURN NULL;
END $$;
CREATE TRIGGER query_logins_insert AFTER INSERT ON ledger.logins
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.query_on_logins();

CREATE FUNCTION ledger.query_on_accounts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT COALESCE(tenant_id, stripe_customer_id) FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT COALESCE(tenant_id, stripe_customer_id) FROM new_rows
            UNION SELECT COALESCE(tenant_id, stripe_customer_id) FROM old_rows));
    ELSE
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT COALESCE(tenant_id, stripe_customer_id) FROM old_rows));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ledger.query_on_tenants() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_accounts(ARRAY(SELECT tenant_id FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT n.tenant_id FROM new_rows n JOIN old_rows o USING (tenant_id)
            WHERE (n.name, n.created_at, n.deleted_at)
                  IS DISTINCT FROM (o.name, o.created_at, o.deleted_at)));
    ELSE
        PERFORM ledger.query_refresh_accounts(ARRAY(SELECT tenant_id FROM old_rows));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ledger.query_on_subscriptions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_accounts(ledger.query_account_ids(ARRAY(
            SELECT stripe_customer_id FROM new_rows)));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_refresh_accounts(ledger.query_account_ids(ARRAY(
            SELECT n.stripe_customer_id FROM new_rows n JOIN old_rows o USING (subscription_id)
            WHERE (n.stripe_customer_id, n.status, n.plan, n.currency, n.current_period_end,
                   n.cancel_at_period_end, n.ended_at, n.committed_mrr, n.forward_mrr,
                   n.state_event_created)
                  IS DISTINCT FROM
                  (o.stripe_customer_id, o.status, o.plan, o.currency, o.current_period_end,
                   o.cancel_at_period_end, o.ended_at, o.committed_mrr, o.forward_mrr,
                   o.state_event_created)
            UNION SELECT o.stripe_customer_id FROM new_rows n JOIN old_rows o
                USING (subscription_id)
            WHERE n.stripe_customer_id IS DISTINCT FROM o.stripe_customer_id)));
    ELSE
        PERFORM ledger.query_refresh_accounts(ledger.query_account_ids(ARRAY(
            SELECT stripe_customer_id FROM old_rows)));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ledger.query_on_payments() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_invoices(ARRAY(SELECT invoice_id FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_refresh_invoices(ARRAY(
            SELECT n.invoice_id FROM new_rows n JOIN old_rows o USING (invoice_id)
            WHERE n IS DISTINCT FROM o));
    ELSE
        PERFORM ledger.query_refresh_invoices(ARRAY(SELECT invoice_id FROM old_rows));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ledger.query_on_credit_notes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_invoices(ARRAY(SELECT invoice_id FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_refresh_invoices(ARRAY(
            SELECT invoice_id FROM new_rows UNION SELECT invoice_id FROM old_rows));
    ELSE
        PERFORM ledger.query_refresh_invoices(ARRAY(SELECT invoice_id FROM old_rows));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ledger.query_on_refunds() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_invoices(ARRAY(
            SELECT p.invoice_id FROM new_rows r JOIN ledger.payments p
              ON p.payment_intent_id = r.payment_intent_id
            UNION SELECT p.invoice_id FROM new_rows r JOIN ledger.payments p
              ON p.invoice_charge_id = r.charge_id));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_refresh_invoices(ARRAY(
            SELECT p.invoice_id FROM (SELECT * FROM new_rows UNION ALL SELECT * FROM old_rows) r
            JOIN ledger.payments p ON p.payment_intent_id = r.payment_intent_id
            UNION
            SELECT p.invoice_id FROM (SELECT * FROM new_rows UNION ALL SELECT * FROM old_rows) r
            JOIN ledger.payments p ON p.invoice_charge_id = r.charge_id));
    ELSE
        PERFORM ledger.query_refresh_invoices(ARRAY(
            SELECT p.invoice_id FROM old_rows r JOIN ledger.payments p
              ON p.payment_intent_id = r.payment_intent_id
            UNION SELECT p.invoice_id FROM old_rows r JOIN ledger.payments p
              ON p.invoice_charge_id = r.charge_id));
    END IF;
    RETURN NULL;
END $$;
"""

# One trigger per (table, operation): a trigger with transition tables takes one event.
_STATEMENT_TRIGGERS = (
    ("accounts", "query_on_accounts"),
    ("tenants", "query_on_tenants"),
    ("subscriptions", "query_on_subscriptions"),
    ("payments", "query_on_payments"),
    ("credit_notes", "query_on_credit_notes"),
    ("refunds", "query_on_refunds"),
)


def _trigger_sql(table: str, function: str) -> str:
    return "\n".join(
        (
            f"CREATE TRIGGER query_{table}_insert AFTER INSERT ON ledger.{table}"
            f" REFERENCING NEW TABLE AS new_rows"
            f" FOR EACH STATEMENT EXECUTE FUNCTION ledger.{function}();",
            f"CREATE TRIGGER query_{table}_update AFTER UPDATE ON ledger.{table}"
            f" REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
            f" FOR EACH STATEMENT EXECUTE FUNCTION ledger.{function}();",
            f"CREATE TRIGGER query_{table}_delete AFTER DELETE ON ledger.{table}"
            f" REFERENCING OLD TABLE AS old_rows"
            f" FOR EACH STATEMENT EXECUTE FUNCTION ledger.{function}();",
        )
    )


def upgrade() -> None:
    op.execute(TABLES_SQL)
    op.execute(FUNCTIONS_SQL)
    op.execute(TRIGGERS_SQL)
    for table, function in _STATEMENT_TRIGGERS:
        op.execute(_trigger_sql(table, function))
    op.execute("SELECT ledger.query_support_rebuild()")


def downgrade() -> None:
    for table, _ in (*_STATEMENT_TRIGGERS, ("billing_events", ""), ("logins", "")):
        for action in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS query_{table}_{action} ON ledger.{table}")
    op.execute(
        "DROP INDEX ledger.query_accounts_key, ledger.query_billing_events_drift_customer,"
        " ledger.query_billing_events_drift_tenant"
    )
    op.execute(
        "DROP TABLE ledger.query_accounts, ledger.query_mrr_steps, ledger.query_mrr_daily,"
        " ledger.query_invoice_rows, ledger.query_revenue_daily, ledger.query_event_daily,"
        " ledger.query_login_days"
    )
    for function in (
        "query_on_billing_events()",
        "query_on_logins()",
        "query_on_accounts()",
        "query_on_tenants()",
        "query_on_subscriptions()",
        "query_on_payments()",
        "query_on_credit_notes()",
        "query_on_refunds()",
        "query_support_rebuild()",
        "query_refresh_invoices(text[])",
        "query_refresh_mrr(text[])",
        "query_refresh_accounts(text[])",
        "query_account_ids(text[])",
        "query_day(timestamptz)",
        "query_lock(integer, text[])",
    ):
        op.execute(f"DROP FUNCTION ledger.{function}")
