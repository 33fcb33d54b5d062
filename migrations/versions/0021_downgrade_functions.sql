-- The functions migration 0021 changed, as they were before it (0020's head): the query_*
-- triggers call the refreshes directly again; 0021's queue and flush functions are dropped
-- (CASCADE: a session that deferred has a temporary queue table whose constraint trigger
-- uses query_on_touched; without the functions nothing queues any more).
-- Frozen: never edit; the live text is migrations/sql/ledger_functions.sql.

-- query_on_accounts
CREATE OR REPLACE FUNCTION ledger.query_on_accounts()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT COALESCE(tenant_id, stripe_customer_id) FROM new_rows
            UNION SELECT l.tenant_id FROM new_rows n
                JOIN ledger.customer_links l ON l.stripe_customer_id = n.stripe_customer_id));
    ELSIF TG_OP = 'UPDATE' THEN
        -- only rows whose columns an account row reads changed (0020): the payment method
        -- and tax columns the derived refresh rewrites every batch do not move an account
        PERFORM ledger.query_refresh_accounts(ARRAY(
            WITH changed AS (
                SELECT n.stripe_customer_id AS new_id, n.tenant_id AS new_tenant,
                       o.stripe_customer_id AS old_id, o.tenant_id AS old_tenant
                FROM new_rows n FULL JOIN old_rows o
                    ON o.stripe_customer_id = n.stripe_customer_id
                WHERE n.stripe_customer_id IS NULL OR o.stripe_customer_id IS NULL
                   OR (n.tenant_id, n.name, n.email, n.currency, n.deleted_at,
                       n.stripe_created_at)
                      IS DISTINCT FROM
                      (o.tenant_id, o.name, o.email, o.currency, o.deleted_at,
                       o.stripe_created_at)
            )
            SELECT COALESCE(new_tenant, new_id) FROM changed
            UNION SELECT COALESCE(old_tenant, old_id) FROM changed
            UNION SELECT l.tenant_id FROM changed c
                JOIN ledger.customer_links l ON l.stripe_customer_id IN (c.new_id, c.old_id)));
    ELSE
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT COALESCE(tenant_id, stripe_customer_id) FROM old_rows
            UNION SELECT l.tenant_id FROM old_rows o
                JOIN ledger.customer_links l ON l.stripe_customer_id = o.stripe_customer_id));
    END IF;
    RETURN NULL;
END $function$;

-- query_on_billing_events
CREATE OR REPLACE FUNCTION ledger.query_on_billing_events()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
    INSERT INTO ledger.query_event_hourly AS h (hour, event_type, has_delta, n)
    SELECT date_trunc('hour', occurred_at, 'UTC'), event_type, COALESCE(amount_delta, 0) <> 0,
           count(*)
    FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (hour, event_type, has_delta) DO UPDATE SET n = h.n + EXCLUDED.n;
    RETURN NULL;
END $function$;

-- query_on_credit_notes
CREATE OR REPLACE FUNCTION ledger.query_on_credit_notes()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
END $function$;

-- query_on_customer_links
CREATE OR REPLACE FUNCTION ledger.query_on_customer_links()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT tenant_id FROM new_rows
            UNION SELECT ledger.account_id(NULL, NULL, a.tenant_id, a.stripe_customer_id)
                FROM new_rows n
                JOIN ledger.accounts a ON a.stripe_customer_id = n.stripe_customer_id
            UNION SELECT b.tenant_id FROM new_rows n
                JOIN ledger.billing_events b ON b.stripe_customer_id = n.stripe_customer_id
                WHERE b.drift_detected));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT tenant_id FROM new_rows UNION SELECT tenant_id FROM old_rows
            UNION SELECT ledger.account_id(NULL, NULL, a.tenant_id, a.stripe_customer_id)
                FROM (SELECT stripe_customer_id FROM new_rows
                      UNION SELECT stripe_customer_id FROM old_rows) x
                JOIN ledger.accounts a ON a.stripe_customer_id = x.stripe_customer_id
            UNION SELECT b.tenant_id
                FROM (SELECT stripe_customer_id FROM new_rows
                      UNION SELECT stripe_customer_id FROM old_rows) x
                JOIN ledger.billing_events b ON b.stripe_customer_id = x.stripe_customer_id
                WHERE b.drift_detected));
    ELSE
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT tenant_id FROM old_rows
            UNION SELECT ledger.account_id(NULL, NULL, a.tenant_id, a.stripe_customer_id)
                FROM old_rows o
                JOIN ledger.accounts a ON a.stripe_customer_id = o.stripe_customer_id
            UNION SELECT b.tenant_id FROM old_rows o
                JOIN ledger.billing_events b ON b.stripe_customer_id = o.stripe_customer_id
                WHERE b.drift_detected));
    END IF;
    RETURN NULL;
END $function$;

-- query_on_payments
CREATE OR REPLACE FUNCTION ledger.query_on_payments()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_invoices(ARRAY(SELECT invoice_id FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_refresh_invoices(ARRAY(
            SELECT n.invoice_id FROM new_rows n JOIN old_rows o USING (invoice_id)
            -- (0020) not for the refund and credit totals alone: the invoice list does not
            -- read them, and the derived refresh (PAYMENTS_REFRESH) rewrites them per batch
            WHERE to_jsonb(n) - '{amount_refunded,refunded_at,amount_credited,credit_noted_at}'::text[]
                  IS DISTINCT FROM
                  to_jsonb(o) - '{amount_refunded,refunded_at,amount_credited,credit_noted_at}'::text[]));
    ELSE
        PERFORM ledger.query_refresh_invoices(ARRAY(SELECT invoice_id FROM old_rows));
    END IF;
    RETURN NULL;
END $function$;

-- query_on_refunds
CREATE OR REPLACE FUNCTION ledger.query_on_refunds()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
END $function$;

-- query_on_subscriptions
CREATE OR REPLACE FUNCTION ledger.query_on_subscriptions()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_accounts(ledger.query_account_ids(ARRAY(
            SELECT stripe_customer_id FROM new_rows)));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_refresh_accounts(ledger.query_account_ids(ARRAY(
            SELECT n.stripe_customer_id FROM new_rows n JOIN old_rows o USING (subscription_id)
            WHERE (n.stripe_customer_id, n.status, n.plan, n.currency, n.current_period_end,
                   n.cancel_at_period_end, n.cancel_at, n.ended_at, n.committed_mrr,
                   n.forward_mrr, n.state_event_created)
                  IS DISTINCT FROM
                  (o.stripe_customer_id, o.status, o.plan, o.currency, o.current_period_end,
                   o.cancel_at_period_end, o.cancel_at, o.ended_at, o.committed_mrr,
                   o.forward_mrr, o.state_event_created)
            UNION SELECT o.stripe_customer_id FROM new_rows n JOIN old_rows o
                USING (subscription_id)
            WHERE n.stripe_customer_id IS DISTINCT FROM o.stripe_customer_id)));
    ELSE
        PERFORM ledger.query_refresh_accounts(ledger.query_account_ids(ARRAY(
            SELECT stripe_customer_id FROM old_rows)));
    END IF;
    RETURN NULL;
END $function$;

-- query_on_tenants
CREATE OR REPLACE FUNCTION ledger.query_on_tenants()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_accounts(ARRAY(SELECT tenant_id FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_refresh_accounts(ARRAY(
            SELECT n.tenant_id FROM new_rows n JOIN old_rows o USING (tenant_id)
            WHERE (n.name, n.created_at, n.deleted_at)
                  IS DISTINCT FROM (o.name, o.created_at, o.deleted_at)));
        -- active users (0014): a tenant's deletion changes which of its logins count and
        -- whether its members are listed
        PERFORM ledger.query_refresh_login_users(ARRAY(
            SELECT m.user_id FROM new_rows n JOIN old_rows o USING (tenant_id)
            JOIN ledger.memberships m ON m.tenant_id = n.tenant_id
            WHERE n.deleted_at IS DISTINCT FROM o.deleted_at
            UNION SELECT d.user_id FROM new_rows n JOIN old_rows o USING (tenant_id)
            JOIN ledger.query_login_days d ON d.tenant_key = n.tenant_id
            WHERE n.deleted_at IS DISTINCT FROM o.deleted_at));
        PERFORM ledger.query_refresh_unlisted_users(ARRAY(  -- (0016)
            SELECT m.user_id FROM new_rows n JOIN old_rows o USING (tenant_id)
            JOIN ledger.memberships m ON m.tenant_id = n.tenant_id
            WHERE n.deleted_at IS DISTINCT FROM o.deleted_at));
    ELSE
        PERFORM ledger.query_refresh_accounts(ARRAY(SELECT tenant_id FROM old_rows));
    END IF;
    RETURN NULL;
END $function$;

DROP FUNCTION ledger.query_flush();
DROP FUNCTION ledger.query_touch(text, text[]);
DROP FUNCTION ledger.query_on_touched() CASCADE;
