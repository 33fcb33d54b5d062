-- The functions migration 0016 changed, as 0015 had them (its downgrade restores these).
-- Frozen: never edit.

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
    RETURN NULL;
END $function$;

-- query_support_rebuild
CREATE OR REPLACE FUNCTION ledger.query_support_rebuild()
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    TRUNCATE ledger.query_accounts, ledger.query_account_mix, ledger.query_mrr_steps,
             ledger.query_mrr_daily, ledger.query_mrr_moves_daily, ledger.query_invoice_rows,
             ledger.query_revenue_daily, ledger.query_event_daily, ledger.query_account_facets,
             ledger.query_invoice_daily, ledger.query_mrr_totals;
    PERFORM ledger.query_refresh_accounts(ARRAY(
        SELECT ledger.account_id(l.tenant_id, NULL, a.tenant_id, a.stripe_customer_id)
        FROM ledger.accounts a
        LEFT JOIN ledger.customer_links l ON l.stripe_customer_id = a.stripe_customer_id
        UNION SELECT tenant_id FROM ledger.tenants));
    PERFORM ledger.query_refresh_mrr(ARRAY(
        SELECT DISTINCT subscription_id FROM ledger.billing_events
        WHERE subscription_id IS NOT NULL
          AND (committed_mrr IS NOT NULL OR forward_mrr IS NOT NULL)));
    PERFORM ledger.query_refresh_invoices(ARRAY(SELECT invoice_id FROM ledger.payments));
    INSERT INTO ledger.query_mrr_totals (currency, n, committed_mrr)
    SELECT currency, count(*), COALESCE(sum(committed_mrr), 0) FROM ledger.subscriptions
    WHERE currency IS NOT NULL GROUP BY 1;
    INSERT INTO ledger.query_event_daily (day, event_type, has_delta, n)
    SELECT ledger.query_day(occurred_at), event_type, COALESCE(amount_delta, 0) <> 0, count(*)
    FROM ledger.billing_events GROUP BY 1, 2, 3;
    TRUNCATE ledger.query_login_days, ledger.query_login_users, ledger.query_login_pairs;
    INSERT INTO ledger.query_login_days (user_id, tenant_key, days)
    SELECT user_id, COALESCE(tenant_id, ''),
           range_agg(daterange(ledger.query_day(at), ledger.query_day(at) + 1))
    FROM ledger.logins WHERE outcome = 'success' GROUP BY 1, 2;
    PERFORM ledger.query_refresh_login_users(ARRAY(
        SELECT DISTINCT user_id FROM ledger.query_login_days));
END $function$;

-- query_on_memberships: a membership decides whether its user is listed (0014)
CREATE OR REPLACE FUNCTION ledger.query_on_memberships()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_refresh_login_users(ARRAY(SELECT user_id FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_refresh_login_users(ARRAY(
            SELECT user_id FROM (SELECT user_id, tenant_id FROM new_rows
                                 EXCEPT SELECT user_id, tenant_id FROM old_rows) came
            UNION SELECT user_id FROM (SELECT user_id, tenant_id FROM old_rows
                                       EXCEPT SELECT user_id, tenant_id FROM new_rows) gone));
    ELSE
        PERFORM ledger.query_refresh_login_users(ARRAY(SELECT user_id FROM old_rows));
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
    ELSE
        PERFORM ledger.query_refresh_accounts(ARRAY(SELECT tenant_id FROM old_rows));
    END IF;
    RETURN NULL;
END $function$;
