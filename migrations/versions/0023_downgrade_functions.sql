-- The functions migration 0023 changed, as they were before it (0020's text): the refunds of
-- an invoice joined on an OR, each subscription's MRR events found by a join with the ids,
-- the rebuild inserting into every index of the query tables row by row.
-- Frozen: never edit.

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

-- query_refresh_mrr
CREATE OR REPLACE FUNCTION ledger.query_refresh_mrr(p_subs text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_steps ledger.query_mrr_steps[];
BEGIN
    p_subs := ARRAY(SELECT DISTINCT k FROM unnest(p_subs) AS u(k) WHERE k IS NOT NULL);
    IF cardinality(p_subs) = 0 THEN
        RETURN;
    END IF;
    PERFORM ledger.query_lock(74002, p_subs);
    -- The steps as they should be; only the stored steps that differ from them leave, and
    -- only the new ones arrive (0020: every step of the subscription was deleted and
    -- inserted again): the day and move totals change by (arrived - left) either way.
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
    )
    SELECT array_agg(ROW(subscription_id, occurred_at, stripe_event_id,
                         ledger.query_day(occurred_at), event_type, cur, c, f, pcur, pc, pf,
                         had)::ledger.query_mrr_steps)
    INTO v_steps
    FROM stepped
    WHERE (c, f, cur) IS DISTINCT FROM (pc, pf, pcur);

    WITH old AS (
        DELETE FROM ledger.query_mrr_steps t USING unnest(p_subs) AS k(id)
        WHERE t.subscription_id = k.id
          AND NOT EXISTS (
              SELECT 1 FROM unnest(v_steps) AS n
              WHERE n.subscription_id = t.subscription_id AND n.occurred_at = t.occurred_at
                AND n.stripe_event_id = t.stripe_event_id AND n IS NOT DISTINCT FROM t)
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

    WITH ins AS (
        INSERT INTO ledger.query_mrr_steps
        SELECT n.* FROM unnest(v_steps) AS n
        WHERE NOT EXISTS (
            SELECT 1 FROM ledger.query_mrr_steps s
            WHERE s.subscription_id = n.subscription_id AND s.occurred_at = n.occurred_at
              AND s.stripe_event_id = n.stripe_event_id)
        ORDER BY n.subscription_id, n.occurred_at, n.stripe_event_id
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

-- query_support_rebuild_in
CREATE OR REPLACE FUNCTION ledger.query_support_rebuild_in(p_chunk integer)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_ids text[];
BEGIN
    TRUNCATE ledger.query_accounts, ledger.query_account_mix, ledger.query_mrr_steps,
             ledger.query_mrr_daily, ledger.query_mrr_moves_daily, ledger.query_invoice_rows,
             ledger.query_revenue_daily, ledger.query_event_daily, ledger.query_account_facets,
             ledger.query_invoice_daily, ledger.query_mrr_totals, ledger.query_event_hourly;
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
END $function$;
