-- The functions migration 0016 changed, as it leaves them (the billing-event counts also per
-- UTC hour in query_event_hourly, kept by the billing_events trigger and refilled by the
-- rebuild). Frozen: never edit; the live text is migrations/sql/ledger_functions.sql.

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
END $function$;
