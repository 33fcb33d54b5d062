-- Frozen copy: the rebuild as 0023 left it (one function, one transaction), for the downgrade
-- of 0025_parallel_rebuild, which also drops the functions 0025 added.

-- query_support_rebuild
CREATE OR REPLACE FUNCTION ledger.query_support_rebuild()
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM ledger.query_support_rebuild_in(5000);
END $function$;

-- query_support_rebuild_in
CREATE OR REPLACE FUNCTION ledger.query_support_rebuild_in(p_chunk integer)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_ids text[];
    v_indexes text[];
    v_names text[];
    v_index text;
BEGIN
    TRUNCATE ledger.query_accounts, ledger.query_account_mix, ledger.query_mrr_steps,
             ledger.query_mrr_daily, ledger.query_mrr_moves_daily, ledger.query_invoice_rows,
             ledger.query_revenue_daily, ledger.query_event_daily, ledger.query_account_facets,
             ledger.query_invoice_daily, ledger.query_mrr_totals, ledger.query_event_hourly;
    -- The secondary indexes of the three row tables are built once at the end (0023), not
    -- entry by entry as the refreshes insert every row (17 on query_accounts, trigram GIN
    -- ones among them, 4 on query_invoice_rows, 2 on query_mrr_steps: over half of the
    -- rebuild at 1M events). TRUNCATE holds these tables exclusively until commit, so no
    -- other session sees them missing; a failed rebuild rolls the drop back. Unique indexes
    -- stay: the refreshes' ON CONFLICT and lookups use them.
    SELECT array_agg(pg_get_indexdef(i.indexrelid) ORDER BY x.relname),
           array_agg(format('%I.%I', n.nspname, x.relname) ORDER BY x.relname)
    INTO v_indexes, v_names
    FROM pg_index i
    JOIN pg_class x ON x.oid = i.indexrelid
    JOIN pg_namespace n ON n.oid = x.relnamespace
    WHERE i.indrelid IN ('ledger.query_accounts'::regclass, 'ledger.query_invoice_rows'::regclass,
                         'ledger.query_mrr_steps'::regclass)
      AND NOT i.indisunique
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
    FOREACH v_index IN ARRAY COALESCE(v_names, '{}') LOOP
        EXECUTE 'DROP INDEX ' || v_index;
    END LOOP;
    -- Accounts and MRR steps p_chunk ids per call (0020): the refreshes hold a call's
    -- computed rows in memory to compare them with the stored ones, so one call for the whole
    -- ledger held every account row and MRR step at once (the backend's private memory grew
    -- with the ledger: 42 -> 100 MiB at 1M events). Each refresh moves the mix, facets, day
    -- and move totals by its own rows only, so the chunks add up to the one-call result.
    FOR v_ids IN
        SELECT array_agg(id ORDER BY id) FROM (
            SELECT id, (row_number() OVER (ORDER BY id) - 1) / p_chunk AS chunk FROM (
                SELECT ledger.account_id(l.tenant_id, NULL, a.tenant_id, a.stripe_customer_id)
                FROM ledger.accounts a
                LEFT JOIN ledger.customer_links l ON l.stripe_customer_id = a.stripe_customer_id
                UNION SELECT tenant_id FROM ledger.tenants) AS ids(id)
            WHERE id IS NOT NULL) AS numbered
        GROUP BY chunk
    LOOP
        PERFORM ledger.query_refresh_accounts(v_ids);
    END LOOP;
    FOR v_ids IN
        SELECT array_agg(id ORDER BY id) FROM (
            SELECT id, (row_number() OVER (ORDER BY id) - 1) / p_chunk AS chunk FROM (
                SELECT DISTINCT subscription_id FROM ledger.billing_events
                WHERE subscription_id IS NOT NULL
                  AND (committed_mrr IS NOT NULL OR forward_mrr IS NOT NULL)) AS ids(id)
            ) AS numbered
        GROUP BY chunk
    LOOP
        PERFORM ledger.query_refresh_mrr(v_ids);
    END LOOP;
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
    FOREACH v_index IN ARRAY COALESCE(v_indexes, '{}') LOOP
        EXECUTE v_index;
    END LOOP;
END $function$;

DROP FUNCTION ledger.query_support_rebuild_part(text, integer);
DROP FUNCTION ledger.query_support_parts();
