-- The functions migration 0028 changes, as it leaves them (0028_mrr_since.py says why).
-- Frozen: never edit; the live text is migrations/sql/ledger_functions.sql.

DROP FUNCTION ledger.query_touch(text, text[]);
DROP FUNCTION ledger.query_refresh_mrr(text[]);

-- query_touch
CREATE OR REPLACE FUNCTION ledger.query_touch(
    p_kind text, p_ids text[], p_since timestamp with time zone DEFAULT NULL)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF current_setting('ledger.query_defer', true) IS DISTINCT FROM 'on' THEN
        CASE p_kind  -- no ELSE: an unknown kind raises CASE_NOT_FOUND
            WHEN 'accounts' THEN PERFORM ledger.query_refresh_accounts(p_ids);
            WHEN 'mrr' THEN PERFORM ledger.query_refresh_mrr(p_ids, p_since);
            WHEN 'invoices' THEN PERFORM ledger.query_refresh_invoices(p_ids);
        END CASE;
        RETURN;
    END IF;
    IF p_kind NOT IN ('accounts', 'mrr', 'invoices') THEN
        RAISE EXCEPTION 'query_touch: unknown kind %', p_kind;
    END IF;
    IF COALESCE(cardinality(p_ids), 0) = 0 THEN
        RETURN;
    END IF;
    IF to_regclass('pg_temp.query_touches') IS NULL THEN
        -- once per session (a rolled-back creation is created again by the next batch);
        -- ON COMMIT DELETE ROWS: nothing queued outlives its transaction
        CREATE TEMPORARY TABLE query_touches (
            kind text NOT NULL, ids text[] NOT NULL, since timestamp with time zone
        ) ON COMMIT DELETE ROWS;
        CREATE CONSTRAINT TRIGGER query_touches_flush AFTER INSERT ON pg_temp.query_touches
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
            EXECUTE FUNCTION ledger.query_on_touched();
    END IF;
    INSERT INTO pg_temp.query_touches (kind, ids, since) VALUES (p_kind, p_ids, p_since);
END $function$;

-- query_flush
CREATE OR REPLACE FUNCTION ledger.query_flush()
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_accounts text[];
    v_subs text[];
    v_since timestamp with time zone;
    v_invoices text[];
    v_queued bigint;
BEGIN
    IF to_regclass('pg_temp.query_touches') IS NULL THEN
        RETURN;
    END IF;
    LOOP
        WITH taken AS (DELETE FROM pg_temp.query_touches RETURNING kind, ids, since)
        SELECT (SELECT count(*) FROM taken),
               ARRAY(SELECT DISTINCT k FROM taken t, unnest(t.ids) AS u(k)
                     WHERE t.kind = 'accounts' AND k IS NOT NULL),
               ARRAY(SELECT DISTINCT k FROM taken t, unnest(t.ids) AS u(k)
                     WHERE t.kind = 'mrr' AND k IS NOT NULL),
               (SELECT CASE WHEN bool_and(t.since IS NOT NULL) THEN min(t.since) END
                FROM taken t WHERE t.kind = 'mrr'),
               ARRAY(SELECT DISTINCT k FROM taken t, unnest(t.ids) AS u(k)
                     WHERE t.kind = 'invoices' AND k IS NOT NULL)
        INTO v_queued, v_accounts, v_subs, v_since, v_invoices;
        EXIT WHEN v_queued = 0;
        PERFORM ledger.query_refresh_accounts(v_accounts);
        PERFORM ledger.query_refresh_mrr(v_subs, v_since);
        PERFORM ledger.query_refresh_invoices(v_invoices);
    END LOOP;
END $function$;

-- query_on_billing_events
CREATE OR REPLACE FUNCTION ledger.query_on_billing_events()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_subs text[];
    v_since timestamp with time zone;
BEGIN
    -- (0028) with the earliest of the new MRR events, in the same pass over the rows:
    -- billing_events only grows, so the steps before it stand
    SELECT COALESCE(array_agg(DISTINCT subscription_id), '{}'), min(occurred_at)
    INTO v_subs, v_since
    FROM new_rows
    WHERE subscription_id IS NOT NULL
      AND (committed_mrr IS NOT NULL OR forward_mrr IS NOT NULL);
    PERFORM ledger.query_touch('mrr', v_subs, v_since);
    IF EXISTS (SELECT 1 FROM new_rows WHERE event_type = 'Unclassified') THEN
        PERFORM ledger.query_touch('accounts',
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

-- query_refresh_mrr
CREATE OR REPLACE FUNCTION ledger.query_refresh_mrr(
    p_subs text[], p_since timestamp with time zone DEFAULT NULL)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_steps ledger.query_mrr_steps[];
    v_from timestamp with time zone := COALESCE(p_since, '-infinity');
BEGIN
    p_subs := ARRAY(SELECT DISTINCT k FROM unnest(p_subs) AS u(k) WHERE k IS NOT NULL);
    IF cardinality(p_subs) = 0 THEN
        RETURN;
    END IF;
    PERFORM ledger.query_lock(74002, p_subs);
    -- The steps as they should be; only the stored steps that differ from them leave, and
    -- only the new ones arrive (0020: every step of the subscription was deleted and
    -- inserted again): the day and move totals change by (arrived - left) either way.
    WITH seed AS (
        SELECT k.id AS subscription_id,
               COALESCE(s.committed, 0) AS c0, COALESCE(s.forward, 0) AS f0,
               s.currency AS cur0,
               COALESCE(s.had_mrr_before OR s.committed > 0, false) AS had0
        FROM unnest(p_subs) AS k(id)
        LEFT JOIN LATERAL (
            SELECT t.committed, t.forward, t.currency, t.had_mrr_before
            FROM ledger.query_mrr_steps t
            WHERE t.subscription_id = k.id AND t.occurred_at < v_from
            ORDER BY t.occurred_at DESC, t.stripe_event_id DESC
            LIMIT 1) s ON true
    ), ev AS (
        SELECT b.subscription_id, b.occurred_at, b.stripe_event_id, b.event_type,
               b.currency, b.committed_mrr, b.forward_mrr, sd.c0, sd.f0, sd.cur0, sd.had0,
               count(b.committed_mrr) OVER w AS cg,
               count(b.forward_mrr) OVER w AS fg,
               count(b.currency) OVER w AS kg
        -- each subscription's events through billing_events_subscription_time (0023): a
        -- join with the ids let the planner hash all of billing_events' MRR events for
        -- every call of the rebuild's chunks (588k rows hashed per 5,000 subscriptions at
        -- 1M events); OFFSET 0 keeps the lookup per id, a range from v_from (0028)
        FROM seed sd
        CROSS JOIN LATERAL (
            SELECT e.subscription_id, e.occurred_at, e.stripe_event_id, e.event_type,
                   e.currency, e.committed_mrr, e.forward_mrr
            FROM ledger.billing_events e
            WHERE e.subscription_id = sd.subscription_id AND e.occurred_at >= v_from
              AND (e.committed_mrr IS NOT NULL OR e.forward_mrr IS NOT NULL)
            OFFSET 0) AS b
        WINDOW w AS (PARTITION BY b.subscription_id ORDER BY b.occurred_at, b.stripe_event_id)
    ), carried AS (
        SELECT ev.*,
               COALESCE(first_value(committed_mrr) OVER (PARTITION BY subscription_id, cg
                   ORDER BY occurred_at, stripe_event_id), c0) AS c,
               COALESCE(first_value(forward_mrr) OVER (PARTITION BY subscription_id, fg
                   ORDER BY occurred_at, stripe_event_id), f0) AS f,
               COALESCE(first_value(currency) OVER (PARTITION BY subscription_id, kg
                   ORDER BY occurred_at, stripe_event_id), cur0) AS cur
        FROM ev
    ), stepped AS (
        SELECT carried.*,
               lag(c, 1, c0) OVER w2 AS pc,
               lag(f, 1, f0) OVER w2 AS pf,
               lag(cur, 1, cur0) OVER w2 AS pcur,
               had0 OR COALESCE(bool_or(c > 0) OVER (w2 ROWS BETWEEN UNBOUNDED PRECEDING
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
        WHERE t.subscription_id = k.id AND t.occurred_at >= v_from
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
