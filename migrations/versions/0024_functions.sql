-- The function migration 0024 changed, as it leaves it. query_refresh_invoices moved
-- query_revenue_daily by new - old and never deleted a row, so a day whose last revenue row
-- left (a refund failed, was deleted or stopped matching) stayed at amount 0; the rebuild,
-- which only adds, has no row there, and VerifyLedger reported each such day. It now deletes
-- the amount-0 rows of the days its invoices counted in before the refresh when no revenue
-- row counts in them any more (a day whose rows sum to 0 keeps its row, as in the rebuild).
-- Test: tests/ledger/queries/test_revenue_days.py (and test_rebuild_cost.py).
-- Frozen: never edit; the live text is migrations/sql/ledger_functions.sql.

-- query_refresh_invoices
CREATE OR REPLACE FUNCTION ledger.query_refresh_invoices(p_invoices text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_revenue_days date[];
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
    ), moved AS (
        INSERT INTO ledger.query_revenue_daily AS d (day, currency, amount)
        SELECT revenue_day, currency, -sum(revenue_amount) FROM old
        WHERE revenue_amount IS NOT NULL AND currency IS NOT NULL
        GROUP BY revenue_day, currency ORDER BY revenue_day, currency
        ON CONFLICT (day, currency) DO UPDATE SET amount = d.amount + EXCLUDED.amount
        RETURNING d.day
    )
    -- the days the old rows counted in (0024): one whose last revenue row leaves is deleted
    -- at the end, as the rebuild (which only adds) never has it
    SELECT ARRAY(SELECT DISTINCT day FROM moved) INTO v_revenue_days;

    WITH p AS (
        -- only the columns read below (0023): the CTE is materialized, and x.* wrote every
        -- payments column of every invoice asked about (70 MB to disk in the rebuild at 1M)
        SELECT x.invoice_id, x.stripe_customer_id, x.subscription_id, x.number, x.status,
               x.currency, x.total, x.tax, x.amount_paid, x.hosted_invoice_url, x.invoice_pdf,
               x.paid_at, x.billing_reason, x.payment_intent_id, x.invoice_charge_id,
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
        FROM p JOIN (
            -- a refund of the invoice's payment intent, or else of its charge (0023): two
            -- equality joins that a hash join serves, where one OR joined every payment with
            -- every refund in a nested loop (the rebuild's ~225k payments probed refunds twice
            -- each at 1M events; a 41k ledger compared 4,533 x 204 pairs)
            SELECT r.*, p.invoice_id AS matched_invoice_id
            FROM p JOIN ledger.refunds r ON r.payment_intent_id = p.payment_intent_id
            UNION ALL
            SELECT r.*, p.invoice_id
            FROM p JOIN ledger.refunds r ON r.charge_id = p.invoice_charge_id
            WHERE r.payment_intent_id IS NULL
               OR r.payment_intent_id IS DISTINCT FROM p.payment_intent_id
        ) r ON r.matched_invoice_id = p.invoice_id
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
    -- a day no revenue row counts in any more (a refund failed, was deleted or stopped
    -- matching) leaves no amount-0 row behind (0024); a day whose rows sum to 0 keeps its row
    DELETE FROM ledger.query_revenue_daily d
    WHERE d.day = ANY(v_revenue_days) AND d.amount = 0
      AND NOT EXISTS (
          SELECT 1 FROM ledger.query_invoice_rows r
          WHERE r.revenue_day = d.day AND r.currency = d.currency
            AND r.revenue_amount IS NOT NULL);
END $function$;
