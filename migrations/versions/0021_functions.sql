-- The functions migration 0021 adds or changes, as it leaves them. A live batch recomputed
-- the same query rows several times: each read-model upsert fired the statement-level
-- query_on_* triggers, which refreshed the accounts / MRR steps / invoice rows they touched
-- at once, and the derived refresh's UPDATEs that followed fired them again (an account up
-- to four times per batch, a new invoice twice). Now those triggers ask through
-- ledger.query_touch(kind, ids), which refreshes at once as before, except in a transaction
-- that has set ledger.query_defer = 'on' (the projection's batches): there it queues the ids
-- in the session's temporary table query_touched, and ledger.query_flush() at the end of the
-- batch refreshes each kind once for the distinct ids. Which rows a change touches is still
-- computed by the triggers, unchanged; a transaction that defers and does not flush is
-- flushed at COMMIT by a deferred constraint trigger on the queue (query_on_touched).
-- query_on_payments also compares an updated payment's old and new row without the refund
-- and credit totals by jsonb_populate_record(row, those four as null) *<> (binary images)
-- instead of to_jsonb of both rows (~60 us per updated payment, on three payments statements
-- per batch), through EXECUTE: planned for each statement's transition tables, where the
-- cached plan of a session's first (often empty) UPDATE nested-looped them in every batch.
-- Frozen: never edit; the live text is migrations/sql/ledger_functions.sql.

-- query_touch
CREATE OR REPLACE FUNCTION ledger.query_touch(p_kind text, p_ids text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF current_setting('ledger.query_defer', true) IS DISTINCT FROM 'on' THEN
        CASE p_kind  -- no ELSE: an unknown kind raises CASE_NOT_FOUND
            WHEN 'accounts' THEN PERFORM ledger.query_refresh_accounts(p_ids);
            WHEN 'mrr' THEN PERFORM ledger.query_refresh_mrr(p_ids);
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
    IF to_regclass('pg_temp.query_touched') IS NULL THEN
        -- once per session (a rolled-back creation is created again by the next batch);
        -- ON COMMIT DELETE ROWS: nothing queued outlives its transaction
        CREATE TEMPORARY TABLE query_touched (kind text NOT NULL, ids text[] NOT NULL)
            ON COMMIT DELETE ROWS;
        CREATE CONSTRAINT TRIGGER query_touched_flush AFTER INSERT ON pg_temp.query_touched
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
            EXECUTE FUNCTION ledger.query_on_touched();
    END IF;
    INSERT INTO pg_temp.query_touched (kind, ids) VALUES (p_kind, p_ids);
END $function$;

-- query_flush
CREATE OR REPLACE FUNCTION ledger.query_flush()
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_accounts text[];
    v_subs text[];
    v_invoices text[];
    v_queued bigint;
BEGIN
    IF to_regclass('pg_temp.query_touched') IS NULL THEN
        RETURN;
    END IF;
    LOOP
        WITH taken AS (DELETE FROM pg_temp.query_touched RETURNING kind, ids)
        SELECT (SELECT count(*) FROM taken),
               ARRAY(SELECT DISTINCT k FROM taken t, unnest(t.ids) AS u(k)
                     WHERE t.kind = 'accounts' AND k IS NOT NULL),
               ARRAY(SELECT DISTINCT k FROM taken t, unnest(t.ids) AS u(k)
                     WHERE t.kind = 'mrr' AND k IS NOT NULL),
               ARRAY(SELECT DISTINCT k FROM taken t, unnest(t.ids) AS u(k)
                     WHERE t.kind = 'invoices' AND k IS NOT NULL)
        INTO v_queued, v_accounts, v_subs, v_invoices;
        EXIT WHEN v_queued = 0;
        PERFORM ledger.query_refresh_accounts(v_accounts);
        PERFORM ledger.query_refresh_mrr(v_subs);
        PERFORM ledger.query_refresh_invoices(v_invoices);
    END LOOP;
END $function$;

-- query_on_touched
CREATE OR REPLACE FUNCTION ledger.query_on_touched()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM ledger.query_flush();
    RETURN NULL;
END $function$;

-- query_on_accounts
CREATE OR REPLACE FUNCTION ledger.query_on_accounts()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_touch('accounts', ARRAY(
            SELECT COALESCE(tenant_id, stripe_customer_id) FROM new_rows
            UNION SELECT l.tenant_id FROM new_rows n
                JOIN ledger.customer_links l ON l.stripe_customer_id = n.stripe_customer_id));
    ELSIF TG_OP = 'UPDATE' THEN
        -- only rows whose columns an account row reads changed (0020): the payment method
        -- and tax columns the derived refresh rewrites every batch do not move an account
        PERFORM ledger.query_touch('accounts', ARRAY(
            WITH changed AS (
                SELECT n.stripe_customer_id AS new_id, n.tenant_id AS new_tenant,
                       o.stripe_customer_id AS old_id, o.tenant_id AS old_tenant
                FROM new_rows n FULL JOIN old_rows o
                    ON o.stripe_customer_id = n.stripe_customer_id
                WHERE n.stripe_customer_id IS NULL OR o.stripe_customer_id IS NULL
                   OR (n.tenant_id, n.name, n.email, n.currency, n.deleted_at,
                       n.stripe_created_at)
                      IS DISTINCT FROM
                      (o.tenant_id, o.name, o.email, o.currency, o.deleted_at,
                       o.stripe_created_at)
            )
            SELECT COALESCE(new_tenant, new_id) FROM changed
            UNION SELECT COALESCE(old_tenant, old_id) FROM changed
            UNION SELECT l.tenant_id FROM changed c
                JOIN ledger.customer_links l ON l.stripe_customer_id IN (c.new_id, c.old_id)));
    ELSE
        PERFORM ledger.query_touch('accounts', ARRAY(
            SELECT COALESCE(tenant_id, stripe_customer_id) FROM old_rows
            UNION SELECT l.tenant_id FROM old_rows o
                JOIN ledger.customer_links l ON l.stripe_customer_id = o.stripe_customer_id));
    END IF;
    RETURN NULL;
END $function$;

-- query_on_billing_events
CREATE OR REPLACE FUNCTION ledger.query_on_billing_events()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM ledger.query_touch('mrr', ARRAY(
        SELECT DISTINCT subscription_id FROM new_rows
        WHERE subscription_id IS NOT NULL
          AND (committed_mrr IS NOT NULL OR forward_mrr IS NOT NULL)));
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

-- query_on_credit_notes
CREATE OR REPLACE FUNCTION ledger.query_on_credit_notes()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_touch('invoices', ARRAY(SELECT invoice_id FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_touch('invoices', ARRAY(
            SELECT invoice_id FROM new_rows UNION SELECT invoice_id FROM old_rows));
    ELSE
        PERFORM ledger.query_touch('invoices', ARRAY(SELECT invoice_id FROM old_rows));
    END IF;
    RETURN NULL;
END $function$;

-- query_on_customer_links
CREATE OR REPLACE FUNCTION ledger.query_on_customer_links()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_touch('accounts', ARRAY(
            SELECT tenant_id FROM new_rows
            UNION SELECT ledger.account_id(NULL, NULL, a.tenant_id, a.stripe_customer_id)
                FROM new_rows n
                JOIN ledger.accounts a ON a.stripe_customer_id = n.stripe_customer_id
            UNION SELECT b.tenant_id FROM new_rows n
                JOIN ledger.billing_events b ON b.stripe_customer_id = n.stripe_customer_id
                WHERE b.drift_detected));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_touch('accounts', ARRAY(
            SELECT tenant_id FROM new_rows UNION SELECT tenant_id FROM old_rows
            UNION SELECT ledger.account_id(NULL, NULL, a.tenant_id, a.stripe_customer_id)
                FROM (SELECT stripe_customer_id FROM new_rows
                      UNION SELECT stripe_customer_id FROM old_rows) x
                JOIN ledger.accounts a ON a.stripe_customer_id = x.stripe_customer_id
            UNION SELECT b.tenant_id
                FROM (SELECT stripe_customer_id FROM new_rows
                      UNION SELECT stripe_customer_id FROM old_rows) x
                JOIN ledger.billing_events b ON b.stripe_customer_id = x.stripe_customer_id
                WHERE b.drift_detected));
    ELSE
        PERFORM ledger.query_touch('accounts', ARRAY(
            SELECT tenant_id FROM old_rows
            UNION SELECT ledger.account_id(NULL, NULL, a.tenant_id, a.stripe_customer_id)
                FROM old_rows o
                JOIN ledger.accounts a ON a.stripe_customer_id = o.stripe_customer_id
            UNION SELECT b.tenant_id FROM old_rows o
                JOIN ledger.billing_events b ON b.stripe_customer_id = o.stripe_customer_id
                WHERE b.drift_detected));
    END IF;
    RETURN NULL;
END $function$;

-- query_on_payments
CREATE OR REPLACE FUNCTION ledger.query_on_payments()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_invoices text[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_touch('invoices', ARRAY(SELECT invoice_id FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        -- (0021) EXECUTE: planned for this statement's row counts. The cached plan of a
        -- session's first UPDATE (often the empty UPDATE half of the first batch's upsert)
        -- nested-looped the two transition tables for every later batch: quadratic.
        EXECUTE $q$
            SELECT ARRAY(
            SELECT n.invoice_id FROM new_rows n JOIN old_rows o USING (invoice_id)
            -- (0020) not for the refund and credit totals alone: the invoice list does not
            -- read them, and the derived refresh (PAYMENTS_REFRESH) rewrites them per batch.
            -- (0021) The rows compared with those four columns set to NULL, as binary images
            -- (*<>): any other column counts, one added later too, and a value whose bytes
            -- changed refreshes (to_jsonb of both rows cost ~60 us per payment).
            WHERE jsonb_populate_record(n, '{"amount_refunded": null, "refunded_at": null,
                      "amount_credited": null, "credit_noted_at": null}'::jsonb)
                  *<> jsonb_populate_record(o, '{"amount_refunded": null, "refunded_at": null,
                      "amount_credited": null, "credit_noted_at": null}'::jsonb))$q$
        INTO v_invoices;
        PERFORM ledger.query_touch('invoices', v_invoices);
    ELSE
        PERFORM ledger.query_touch('invoices', ARRAY(SELECT invoice_id FROM old_rows));
    END IF;
    RETURN NULL;
END $function$;

-- query_on_refunds
CREATE OR REPLACE FUNCTION ledger.query_on_refunds()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_touch('invoices', ARRAY(
            SELECT p.invoice_id FROM new_rows r JOIN ledger.payments p
              ON p.payment_intent_id = r.payment_intent_id
            UNION SELECT p.invoice_id FROM new_rows r JOIN ledger.payments p
              ON p.invoice_charge_id = r.charge_id));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_touch('invoices', ARRAY(
            SELECT p.invoice_id FROM (SELECT * FROM new_rows UNION ALL SELECT * FROM old_rows) r
            JOIN ledger.payments p ON p.payment_intent_id = r.payment_intent_id
            UNION
            SELECT p.invoice_id FROM (SELECT * FROM new_rows UNION ALL SELECT * FROM old_rows) r
            JOIN ledger.payments p ON p.invoice_charge_id = r.charge_id));
    ELSE
        PERFORM ledger.query_touch('invoices', ARRAY(
            SELECT p.invoice_id FROM old_rows r JOIN ledger.payments p
              ON p.payment_intent_id = r.payment_intent_id
            UNION SELECT p.invoice_id FROM old_rows r JOIN ledger.payments p
              ON p.invoice_charge_id = r.charge_id));
    END IF;
    RETURN NULL;
END $function$;

-- query_on_subscriptions
CREATE OR REPLACE FUNCTION ledger.query_on_subscriptions()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM ledger.query_touch('accounts', ledger.query_account_ids(ARRAY(
            SELECT stripe_customer_id FROM new_rows)));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_touch('accounts', ledger.query_account_ids(ARRAY(
            SELECT n.stripe_customer_id FROM new_rows n JOIN old_rows o USING (subscription_id)
            WHERE (n.stripe_customer_id, n.status, n.plan, n.currency, n.current_period_end,
                   n.cancel_at_period_end, n.cancel_at, n.ended_at, n.committed_mrr,
                   n.forward_mrr, n.state_event_created)
                  IS DISTINCT FROM
                  (o.stripe_customer_id, o.status, o.plan, o.currency, o.current_period_end,
                   o.cancel_at_period_end, o.cancel_at, o.ended_at, o.committed_mrr,
                   o.forward_mrr, o.state_event_created)
            UNION SELECT o.stripe_customer_id FROM new_rows n JOIN old_rows o
                USING (subscription_id)
            WHERE n.stripe_customer_id IS DISTINCT FROM o.stripe_customer_id)));
    ELSE
        PERFORM ledger.query_touch('accounts', ledger.query_account_ids(ARRAY(
            SELECT stripe_customer_id FROM old_rows)));
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
        PERFORM ledger.query_touch('accounts', ARRAY(SELECT tenant_id FROM new_rows));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM ledger.query_touch('accounts', ARRAY(
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
        PERFORM ledger.query_touch('accounts', ARRAY(SELECT tenant_id FROM old_rows));
    END IF;
    RETURN NULL;
END $function$;
