-- The functions migration 0016 added or changed, as it leaves them (the billing-event counts
-- also per UTC hour in query_event_hourly, kept by the billing_events trigger; the unlisted
-- users in query_unlisted_users, kept by the membership and tenant triggers; both refilled
-- by the rebuild). Frozen: never edit; the live text is migrations/sql/ledger_functions.sql.

-- query_on_billing_events (0016: also per UTC hour, query_event_hourly)
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

-- query_support_rebuild
CREATE OR REPLACE FUNCTION ledger.query_support_rebuild()
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    TRUNCATE ledger.query_accounts, ledger.query_account_mix, ledger.query_mrr_steps,
             ledger.query_mrr_daily, ledger.query_mrr_moves_daily, ledger.query_invoice_rows,
             ledger.query_revenue_daily, ledger.query_event_daily, ledger.query_account_facets,
             ledger.query_invoice_daily, ledger.query_mrr_totals, ledger.query_event_hourly;
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
    -- one pass over the events per hour (0016), the days summed from the hours
    INSERT INTO ledger.query_event_hourly (hour, event_type, has_delta, n)
    SELECT date_trunc('hour', occurred_at, 'UTC'), event_type, COALESCE(amount_delta, 0) <> 0,
           count(*)
    FROM ledger.billing_events GROUP BY 1, 2, 3;
    INSERT INTO ledger.query_event_daily (day, event_type, has_delta, n)
    SELECT ledger.query_day(hour), event_type, has_delta, sum(n)
    FROM ledger.query_event_hourly GROUP BY 1, 2, 3;
    TRUNCATE ledger.query_login_days, ledger.query_login_users, ledger.query_login_pairs;
    INSERT INTO ledger.query_login_days (user_id, tenant_key, days)
    SELECT user_id, COALESCE(tenant_id, ''),
           range_agg(daterange(ledger.query_day(at), ledger.query_day(at) + 1))
    FROM ledger.logins WHERE outcome = 'success' GROUP BY 1, 2;
    PERFORM ledger.query_refresh_login_users(ARRAY(
        SELECT DISTINCT user_id FROM ledger.query_login_days));
    TRUNCATE ledger.query_unlisted_users;
    PERFORM ledger.query_refresh_unlisted_users(ARRAY(
        SELECT m.user_id FROM ledger.memberships m
        JOIN ledger.tenants t ON t.tenant_id = m.tenant_id WHERE t.deleted_at IS NOT NULL));
END $function$;

-- query_on_memberships: a membership decides whether its user is listed (0014), for the
-- active users' login days and (0016) the unlisted users the active sessions leave out
CREATE OR REPLACE FUNCTION ledger.query_on_memberships()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_users text[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_users := ARRAY(SELECT user_id FROM new_rows);
    ELSIF TG_OP = 'UPDATE' THEN
        v_users := ARRAY(
            SELECT user_id FROM (SELECT user_id, tenant_id FROM new_rows
                                 EXCEPT SELECT user_id, tenant_id FROM old_rows) came
            UNION SELECT user_id FROM (SELECT user_id, tenant_id FROM old_rows
                                       EXCEPT SELECT user_id, tenant_id FROM new_rows) gone);
    ELSE
        v_users := ARRAY(SELECT user_id FROM old_rows);
    END IF;
    PERFORM ledger.query_refresh_login_users(v_users);
    PERFORM ledger.query_refresh_unlisted_users(v_users);
    RETURN NULL;
END $function$;

-- query_on_tenants (0016: also the unlisted users)
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

-- query_refresh_unlisted_users: query_unlisted_users for p_users (0016): the users the
-- directory does not list (services.ledger.directory.reads.listed_user): members of a deleted
-- tenant without a membership in a live one. The dashboard's active sessions leave them out;
-- a few rows (the members of deleted tenants) instead of a join over every membership.
CREATE OR REPLACE FUNCTION ledger.query_refresh_unlisted_users(p_users text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    p_users := ARRAY(SELECT DISTINCT k FROM unnest(p_users) AS u(k) WHERE k IS NOT NULL);
    IF cardinality(p_users) = 0 THEN
        RETURN;
    END IF;
    DELETE FROM ledger.query_unlisted_users t USING unnest(p_users) AS k(id)
    WHERE t.user_id = k.id;
    INSERT INTO ledger.query_unlisted_users (user_id)
    SELECT DISTINCT m.user_id
    FROM ledger.memberships m JOIN unnest(p_users) AS k(id) ON m.user_id = k.id
    JOIN ledger.tenants t ON t.tenant_id = m.tenant_id
    WHERE t.deleted_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM ledger.memberships l
                      JOIN ledger.tenants lt ON lt.tenant_id = l.tenant_id
                      WHERE l.user_id = m.user_id AND lt.deleted_at IS NULL);
END $function$;
