-- Frozen copy: the functions 0025_parallel_rebuild creates or replaces, as it leaves them.

-- query_support_parts (0025): the parts of the query_* rebuild, in the order a one-transaction
-- rebuild runs them. Each part truncates and refills its own tables from the source tables
-- only (never another part's query_* rows), so parts may also run in separate transactions
-- side by side: the end of a bulk replay runs them on two connections
-- (services/ledger/replay.py), and that is the only thing a caller must know of the list.
CREATE OR REPLACE FUNCTION ledger.query_support_parts()
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE
AS $function$
    SELECT ARRAY['accounts', 'mrr', 'invoices', 'events', 'logins']
$function$;

-- query_support_rebuild
CREATE OR REPLACE FUNCTION ledger.query_support_rebuild()
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_part text;
BEGIN
    FOREACH v_part IN ARRAY ledger.query_support_parts() LOOP
        PERFORM ledger.query_support_rebuild_part(v_part);
    END LOOP;
END $function$;

-- query_support_rebuild_in: the whole rebuild with p_chunk ids per refresh call (tests use
-- tiny chunks to check that the chunks add up to the one-call result)
CREATE OR REPLACE FUNCTION ledger.query_support_rebuild_in(p_chunk integer)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_part text;
BEGIN
    FOREACH v_part IN ARRAY ledger.query_support_parts() LOOP
        PERFORM ledger.query_support_rebuild_part(v_part, p_chunk);
    END LOOP;
END $function$;

-- query_support_rebuild_part (0025: the rebuild of 0023 split by the tables each part fills)
CREATE OR REPLACE FUNCTION ledger.query_support_rebuild_part(p_part text, p_chunk integer DEFAULT 5000)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_ids text[];
    v_indexes text[];
    v_names text[];
    v_index text;
    v_rows regclass;
BEGIN
    CASE p_part  -- no ELSE: an unknown part raises CASE_NOT_FOUND
        WHEN 'accounts' THEN
            TRUNCATE ledger.query_accounts, ledger.query_account_mix, ledger.query_account_facets;
            v_rows := 'ledger.query_accounts';
        WHEN 'mrr' THEN
            TRUNCATE ledger.query_mrr_steps, ledger.query_mrr_daily, ledger.query_mrr_moves_daily,
                     ledger.query_mrr_totals;
            v_rows := 'ledger.query_mrr_steps';
        WHEN 'invoices' THEN
            TRUNCATE ledger.query_invoice_rows, ledger.query_revenue_daily,
                     ledger.query_invoice_daily;
            v_rows := 'ledger.query_invoice_rows';
        WHEN 'events' THEN
            TRUNCATE ledger.query_event_hourly, ledger.query_event_daily;
        WHEN 'logins' THEN
            TRUNCATE ledger.query_login_days, ledger.query_login_users, ledger.query_login_pairs,
                     ledger.query_unlisted_users;
    END CASE;
    -- The row table's secondary indexes are built once at the end (0023), not entry by entry
    -- as the refreshes insert every row (17 on query_accounts, trigram GIN ones among them, 4
    -- on query_invoice_rows, 2 on query_mrr_steps). TRUNCATE holds the table exclusively
    -- until commit, so no other session sees them missing; a failed rebuild rolls the drop
    -- back. Unique indexes stay: the refreshes' ON CONFLICT and lookups use them.
    IF v_rows IS NOT NULL THEN
        SELECT array_agg(pg_get_indexdef(i.indexrelid) ORDER BY x.relname),
               array_agg(format('%I.%I', n.nspname, x.relname) ORDER BY x.relname)
        INTO v_indexes, v_names
        FROM pg_index i
        JOIN pg_class x ON x.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = x.relnamespace
        WHERE i.indrelid = v_rows
          AND NOT i.indisunique
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
        FOREACH v_index IN ARRAY COALESCE(v_names, '{}') LOOP
            EXECUTE 'DROP INDEX ' || v_index;
        END LOOP;
    END IF;
    -- Accounts and MRR steps p_chunk ids per call (0020): the refreshes hold a call's
    -- computed rows in memory to compare them with the stored ones, so one call for the whole
    -- ledger held every account row and MRR step at once (the backend's private memory grew
    -- with the ledger: 42 -> 100 MiB at 1M events). Each refresh moves the mix, facets, day
    -- and move totals by its own rows only, so the chunks add up to the one-call result.
    IF p_part = 'accounts' THEN
        FOR v_ids IN
            SELECT array_agg(id ORDER BY id) FROM (
                SELECT id, (row_number() OVER (ORDER BY id) - 1) / p_chunk AS chunk FROM (
                    SELECT ledger.account_id(l.tenant_id, NULL, a.tenant_id, a.stripe_customer_id)
                    FROM ledger.accounts a
                    LEFT JOIN ledger.customer_links l
                        ON l.stripe_customer_id = a.stripe_customer_id
                    UNION SELECT tenant_id FROM ledger.tenants) AS ids(id)
                WHERE id IS NOT NULL) AS numbered
            GROUP BY chunk
        LOOP
            PERFORM ledger.query_refresh_accounts(v_ids);
        END LOOP;
    ELSIF p_part = 'mrr' THEN
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
        INSERT INTO ledger.query_mrr_totals (currency, n, committed_mrr)
        SELECT currency, count(*), COALESCE(sum(committed_mrr), 0) FROM ledger.subscriptions
        WHERE currency IS NOT NULL GROUP BY 1;
    ELSIF p_part = 'invoices' THEN
        PERFORM ledger.query_refresh_invoices(ARRAY(SELECT invoice_id FROM ledger.payments));
    ELSIF p_part = 'events' THEN
        -- one pass over the events per hour (0016), the days summed from the hours
        INSERT INTO ledger.query_event_hourly (hour, event_type, has_delta, n)
        SELECT date_trunc('hour', occurred_at, 'UTC'), event_type,
               COALESCE(amount_delta, 0) <> 0, count(*)
        FROM ledger.billing_events GROUP BY 1, 2, 3;
        INSERT INTO ledger.query_event_daily (day, event_type, has_delta, n)
        SELECT ledger.query_day(hour), event_type, has_delta, sum(n)
        FROM ledger.query_event_hourly GROUP BY 1, 2, 3;
    ELSE  -- 'logins'
        INSERT INTO ledger.query_login_days (user_id, tenant_key, days)
        SELECT user_id, COALESCE(tenant_id, ''),
               range_agg(daterange(ledger.query_day(at), ledger.query_day(at) + 1))
        FROM ledger.logins WHERE outcome = 'success' GROUP BY 1, 2;
        PERFORM ledger.query_refresh_login_users(ARRAY(
            SELECT DISTINCT user_id FROM ledger.query_login_days));
        PERFORM ledger.query_refresh_unlisted_users(ARRAY(
            SELECT m.user_id FROM ledger.memberships m
            JOIN ledger.tenants t ON t.tenant_id = m.tenant_id WHERE t.deleted_at IS NOT NULL));
    END IF;
    FOREACH v_index IN ARRAY COALESCE(v_indexes, '{}') LOOP
        EXECUTE v_index;
    END LOOP;
END $function$;
