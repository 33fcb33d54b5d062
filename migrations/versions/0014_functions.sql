-- The functions migration 0014 added or changed, as it leaves them (active users from
-- query_login_users / query_login_pairs, account counts from query_account_facets, invoice
-- totals from query_invoice_daily, the KPI MRR from query_mrr_totals; all emptied and refilled
-- by the rebuild). Frozen: never edit; the live text is migrations/sql/ledger_functions.sql.

-- query_login_day_pairs: each day of a user's counted login days with the counted day before
-- it ('-infinity' for the first) (0014). A user is active in [a, b) exactly when one of its
-- days d in [a, b) has its previous day before a, so counting those pairs counts the users.
CREATE OR REPLACE FUNCTION ledger.query_login_day_pairs(p_days datemultirange)
 RETURNS TABLE(day date, prev_day date)
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT g.d::date,
           CASE WHEN g.d::date = lower(r.rng) THEN COALESCE(r.prev_end - 1, '-infinity'::date)
                ELSE g.d::date - 1 END
    FROM (SELECT u.rng, lag(upper(u.rng)) OVER (ORDER BY lower(u.rng)) AS prev_end
          FROM unnest(p_days) AS u(rng)) r
    CROSS JOIN LATERAL generate_series(lower(r.rng), upper(r.rng) - 1, interval '1 day') AS g(d)
$function$;

-- query_login_user_days: the login days that count for the dashboard's active users, per
-- user of p_users (0014): successful logins (query_login_days) whose login tenant is none or
-- not deleted, of users the directory lists (no membership, or one in a live tenant:
-- services.ledger.directory.reads.listed_user).
CREATE OR REPLACE FUNCTION ledger.query_login_user_days(p_users text[])
 RETURNS TABLE(user_id text, days datemultirange)
 LANGUAGE sql
 STABLE
AS $function$
    SELECT d.user_id, range_agg(d.days)
    FROM ledger.query_login_days d JOIN unnest(p_users) AS k(id) ON d.user_id = k.id
    WHERE NOT EXISTS (
              SELECT 1 FROM ledger.tenants t
              WHERE t.tenant_id = NULLIF(d.tenant_key, '') AND t.deleted_at IS NOT NULL)
      AND (NOT EXISTS (SELECT 1 FROM ledger.memberships m WHERE m.user_id = d.user_id)
           OR EXISTS (SELECT 1 FROM ledger.memberships m
                      JOIN ledger.tenants t ON t.tenant_id = m.tenant_id
                      WHERE m.user_id = d.user_id AND t.deleted_at IS NULL))
    GROUP BY d.user_id
$function$;

-- query_move_account_facets: adds (p_sign 1) or removes (-1) the live rows of
-- query_accounts for p_ids to / from query_account_facets (0014); query_refresh_accounts
-- calls it around its rewrite, like query_move_account_mix.
CREATE OR REPLACE FUNCTION ledger.query_move_account_facets(p_ids text[], p_sign integer)
 RETURNS void
 LANGUAGE sql
AS $function$
    INSERT INTO ledger.query_account_facets AS f (plan, status, drift_detected, unsynced, n)
    SELECT a.plan, a.status, a.drift_detected, a.unsynced, p_sign * count(*)
    FROM ledger.query_accounts a JOIN unnest(p_ids) AS k(id) ON a.account_id = k.id
    WHERE a.deleted_at IS NULL
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (plan, status, drift_detected, unsynced) DO UPDATE SET n = f.n + EXCLUDED.n
$function$;

-- query_on_logins
CREATE OR REPLACE FUNCTION ledger.query_on_logins()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    INSERT INTO ledger.query_login_days AS d (user_id, tenant_key, days)
    SELECT user_id, COALESCE(tenant_id, ''),
           range_agg(daterange(ledger.query_day(at), ledger.query_day(at) + 1))
    FROM new_rows WHERE outcome = 'success'
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (user_id, tenant_key) DO UPDATE SET days = d.days + EXCLUDED.days;
    PERFORM ledger.query_refresh_login_users(ARRAY(
        SELECT DISTINCT user_id FROM new_rows WHERE outcome = 'success'));
    RETURN NULL;
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

-- query_on_subscription_totals: committed MRR per currency of every subscription (0014),
-- moved by (new - old) of the statement's rows; rows that do not move it are not touched.
CREATE OR REPLACE FUNCTION ledger.query_on_subscription_totals()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ledger.query_mrr_totals AS t (currency, n, committed_mrr)
        SELECT currency, count(*), COALESCE(sum(committed_mrr), 0) FROM new_rows
        WHERE currency IS NOT NULL GROUP BY 1 ORDER BY 1
        ON CONFLICT (currency) DO UPDATE
            SET n = t.n + EXCLUDED.n, committed_mrr = t.committed_mrr + EXCLUDED.committed_mrr;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO ledger.query_mrr_totals AS t (currency, n, committed_mrr)
        SELECT currency, sum(n), sum(c)
        FROM (SELECT currency, 1 AS n, COALESCE(committed_mrr, 0) AS c FROM new_rows
              UNION ALL
              SELECT currency, -1, -COALESCE(committed_mrr, 0) FROM old_rows) x
        WHERE currency IS NOT NULL GROUP BY 1 HAVING sum(n) <> 0 OR sum(c) <> 0 ORDER BY 1
        ON CONFLICT (currency) DO UPDATE
            SET n = t.n + EXCLUDED.n, committed_mrr = t.committed_mrr + EXCLUDED.committed_mrr;
    ELSE
        INSERT INTO ledger.query_mrr_totals AS t (currency, n, committed_mrr)
        SELECT currency, -count(*), -COALESCE(sum(committed_mrr), 0) FROM old_rows
        WHERE currency IS NOT NULL GROUP BY 1 ORDER BY 1
        ON CONFLICT (currency) DO UPDATE
            SET n = t.n + EXCLUDED.n, committed_mrr = t.committed_mrr + EXCLUDED.committed_mrr;
    END IF;
    DELETE FROM ledger.query_mrr_totals WHERE n = 0;
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
    PERFORM ledger.query_move_account_mix(p_ids, 1);
    PERFORM ledger.query_move_account_facets(p_ids, 1);
    DELETE FROM ledger.query_account_mix WHERE n = 0;
    DELETE FROM ledger.query_account_facets WHERE n = 0;
END $function$;

-- query_refresh_invoices
CREATE OR REPLACE FUNCTION ledger.query_refresh_invoices(p_invoices text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    p_invoices := ARRAY(SELECT DISTINCT k FROM unnest(p_invoices) AS u(k) WHERE k IS NOT NULL);
    IF cardinality(p_invoices) = 0 THEN
        RETURN;
    END IF;
    PERFORM ledger.query_lock(74003, p_invoices);
    WITH old AS (
        DELETE FROM ledger.query_invoice_rows t USING unnest(p_invoices) AS k(id)
        WHERE t.invoice_id = k.id
        RETURNING row_day, kind, revenue_day, currency, revenue_amount
    ), uncounted AS (
        -- rows per day and kind (0014): the invoice list's total
        INSERT INTO ledger.query_invoice_daily AS c (day, kind, n)
        SELECT row_day, kind, -count(*) FROM old GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (day, kind) DO UPDATE SET n = c.n + EXCLUDED.n
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
                        THEN ledger.round_half_even(r.gross::numeric * r.ex_tax, r.total)
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
        RETURNING row_day, kind, revenue_day, currency, revenue_amount
    ), counted AS (
        INSERT INTO ledger.query_invoice_daily AS c (day, kind, n)
        SELECT row_day, kind, count(*) FROM ins GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (day, kind) DO UPDATE SET n = c.n + EXCLUDED.n
    )
    INSERT INTO ledger.query_revenue_daily AS d (day, currency, amount)
    SELECT revenue_day, currency, sum(revenue_amount) FROM ins
    WHERE revenue_amount IS NOT NULL AND currency IS NOT NULL
    GROUP BY revenue_day, currency ORDER BY revenue_day, currency
    ON CONFLICT (day, currency) DO UPDATE SET amount = d.amount + EXCLUDED.amount;
    DELETE FROM ledger.query_invoice_daily WHERE n = 0;
END $function$;

-- query_refresh_login_users: query_login_users and query_login_pairs for p_users (0014).
-- Both the old and the new pairs of each user are computed; only their difference is
-- written, so a login on a day already counted writes nothing and a new day a few rows.
CREATE OR REPLACE FUNCTION ledger.query_refresh_login_users(p_users text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    p_users := ARRAY(SELECT DISTINCT k FROM unnest(p_users) AS u(k) WHERE k IS NOT NULL);
    IF cardinality(p_users) = 0 THEN
        RETURN;
    END IF;
    PERFORM ledger.query_lock(74004, p_users);
    WITH old_pairs AS (
        SELECT x.day, x.prev_day
        FROM ledger.query_login_users u JOIN unnest(p_users) AS k(id) ON u.user_id = k.id
        CROSS JOIN LATERAL ledger.query_login_day_pairs(u.days) AS x
    ), new_pairs AS (
        SELECT x.day, x.prev_day FROM ledger.query_login_user_days(p_users) AS u
        CROSS JOIN LATERAL ledger.query_login_day_pairs(u.days) AS x
    ), delta AS (
        SELECT day, prev_day, -1 AS n
        FROM (SELECT * FROM old_pairs EXCEPT ALL SELECT * FROM new_pairs) gone
        UNION ALL
        SELECT day, prev_day, 1 FROM (SELECT * FROM new_pairs EXCEPT ALL SELECT * FROM old_pairs) came
    )
    INSERT INTO ledger.query_login_pairs AS p (day, prev_day, n)
    SELECT day, prev_day, sum(n) FROM delta
    GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2
    ON CONFLICT (day, prev_day) DO UPDATE SET n = p.n + EXCLUDED.n;
    DELETE FROM ledger.query_login_pairs WHERE n = 0;
    DELETE FROM ledger.query_login_users t USING unnest(p_users) AS k(id) WHERE t.user_id = k.id;
    INSERT INTO ledger.query_login_users (user_id, days)
    SELECT user_id, days FROM ledger.query_login_user_days(p_users);
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
