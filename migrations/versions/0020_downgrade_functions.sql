-- The functions migration 0020 changed, as they were before it (0020's downgrade):
-- query_refresh_accounts as 0017 left it, query_refresh_mrr as 0012 left it,
-- query_on_accounts and query_on_payments as 0007 left them, query_support_rebuild as 0016
-- left it (and 0020's query_support_rebuild_in dropped).
-- Frozen: never edit.

-- query_refresh_accounts
CREATE OR REPLACE FUNCTION ledger.query_refresh_accounts(p_ids text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    p_ids := ARRAY(SELECT DISTINCT k FROM unnest(p_ids) AS u(k) WHERE k IS NOT NULL);
    IF cardinality(p_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM ledger.query_lock(74001, p_ids);
    PERFORM ledger.query_move_account_mix(p_ids, -1);
    PERFORM ledger.query_move_account_facets(p_ids, -1);
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
        CASE WHEN ps.live
                  AND NOT ledger.is_cancelling(ps.cancel_at_period_end, ps.cancel_at,
                                               ps.current_period_end)
             THEN ps.current_period_end END,
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
               s.cancel_at_period_end, s.cancel_at,
               NOT ledger.is_ended(s.status, s.ended_at) AS live
        FROM ledger.subscriptions s
        WHERE s.stripe_customer_id = ANY(c.customers)
        ORDER BY NOT ledger.is_ended(s.status, s.ended_at) DESC,
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
                   SELECT 1 FROM unnest(c.customers) AS cu(id)
                   WHERE EXISTS (
                       SELECT 1 FROM ledger.billing_events b
                       WHERE b.stripe_customer_id = cu.id AND b.drift_detected))
               OR EXISTS (
                   SELECT 1 FROM ledger.billing_events b
                   WHERE b.tenant_id = ids.account_id AND b.drift_detected
                     AND NOT EXISTS (
                         SELECT 1 FROM ledger.customer_links l
                         WHERE l.stripe_customer_id = b.stripe_customer_id
                           AND l.tenant_id <> ids.account_id)) AS drift
    ) d ON true
    WHERE t.tenant_id IS NOT NULL OR c.n > 0;
    PERFORM ledger.query_move_account_mix(p_ids, 1);
    PERFORM ledger.query_move_account_facets(p_ids, 1);
    DELETE FROM ledger.query_account_mix WHERE n = 0;
    DELETE FROM ledger.query_account_facets WHERE n = 0;
END $function$;

-- query_refresh_mrr
CREATE OR REPLACE FUNCTION ledger.query_refresh_mrr(p_subs text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    p_subs := ARRAY(SELECT DISTINCT k FROM unnest(p_subs) AS u(k) WHERE k IS NOT NULL);
    IF cardinality(p_subs) = 0 THEN
        RETURN;
    END IF;
    PERFORM ledger.query_lock(74002, p_subs);
    WITH old AS (
        DELETE FROM ledger.query_mrr_steps t USING unnest(p_subs) AS k(id)
        WHERE t.subscription_id = k.id
        RETURNING day, currency, committed, forward, prev_currency, prev_committed, prev_forward,
                  had_mrr_before, event_type
    ), contrib AS (
        SELECT day, currency, -committed AS c, -forward AS f FROM old WHERE currency IS NOT NULL
        UNION ALL
        SELECT day, prev_currency, prev_committed, prev_forward FROM old
        WHERE prev_currency IS NOT NULL
    ), moves AS (
        -- same-currency committed changes, by shape (0012): see query_mrr_moves_daily
        INSERT INTO ledger.query_mrr_moves_daily AS m (day, currency, prev_sign, sign, rising,
            had_mrr_before, reactivated, n, amount)
        SELECT day, currency, sign(prev_committed)::smallint, sign(committed)::smallint,
               committed > prev_committed,
               had_mrr_before, event_type = 'SubscriptionReactivated',
               -count(*), -sum(committed - prev_committed)
        FROM old
        WHERE currency IS NOT NULL AND (prev_currency IS NULL OR prev_currency = currency)
          AND committed <> prev_committed
        GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (day, currency, prev_sign, sign, rising, had_mrr_before, reactivated)
        DO UPDATE SET n = m.n + EXCLUDED.n, amount = m.amount + EXCLUDED.amount
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
        RETURNING day, currency, committed, forward, prev_currency, prev_committed, prev_forward,
                  had_mrr_before, event_type
    ), contrib AS (
        SELECT day, currency, committed AS c, forward AS f FROM ins WHERE currency IS NOT NULL
        UNION ALL
        SELECT day, prev_currency, -prev_committed, -prev_forward FROM ins
        WHERE prev_currency IS NOT NULL
    ), moves AS (
        INSERT INTO ledger.query_mrr_moves_daily AS m (day, currency, prev_sign, sign, rising,
            had_mrr_before, reactivated, n, amount)
        SELECT day, currency, sign(prev_committed)::smallint, sign(committed)::smallint,
               committed > prev_committed,
               had_mrr_before, event_type = 'SubscriptionReactivated',
               count(*), sum(committed - prev_committed)
        FROM ins
        WHERE currency IS NOT NULL AND (prev_currency IS NULL OR prev_currency = currency)
          AND committed <> prev_committed
        GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (day, currency, prev_sign, sign, rising, had_mrr_before, reactivated)
        DO UPDATE SET n = m.n + EXCLUDED.n, amount = m.amount + EXCLUDED.amount
    )
    INSERT INTO ledger.query_mrr_daily AS d (day, currency, committed_delta, forward_delta)
    SELECT day, currency, sum(c), sum(f) FROM contrib
    GROUP BY day, currency ORDER BY day, currency
    ON CONFLICT (day, currency) DO UPDATE
        SET committed_delta = d.committed_delta + EXCLUDED.committed_delta,
            forward_delta = d.forward_delta + EXCLUDED.forward_delta;

    -- A day whose deltas cancel out is no row at all, whatever order the steps were applied
    -- in (the property test found incremental maintenance leaving 0/0 rows a rebuild never
    -- has); the partial index query_mrr_daily_zero (0007) keeps this cheap.
    DELETE FROM ledger.query_mrr_daily
    WHERE committed_delta = 0 AND forward_delta = 0;
    DELETE FROM ledger.query_mrr_moves_daily WHERE n = 0;
END $function$;

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
            WHERE n IS DISTINCT FROM o));
    ELSE
        PERFORM ledger.query_refresh_invoices(ARRAY(SELECT invoice_id FROM old_rows));
    END IF;
    RETURN NULL;
END $function$;

-- query_support_rebuild (as 0016 left it)
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

DROP FUNCTION ledger.query_support_rebuild_in(integer);
