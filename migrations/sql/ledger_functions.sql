-- The ledger schema's functions as they are live at the head of the migration history:
-- THE place to read them. Each is a CREATE OR REPLACE, so the file can be run on a migrated
-- database at any time and changes nothing (a test checks exactly that, and that every
-- function of the schema is here).
--
-- How history stays fixed: a migration never reads this file. Migration 0007 executes its
-- own frozen copy (migrations/versions/0007_ledger_functions.sql). To change a function,
-- edit it here AND add a migration that runs a new frozen copy of this file; the test fails
-- until the database the migrations build has exactly the bodies written here.
--
-- Rules that Python knows too have one SQL twin each (section 1), tested for equality with
-- their Python home, services/ledger/domain/rules.py and services/ledger/domain/money.py.

-- ===================================================================== 1. shared rules

-- Ended subscription: an ended status or an ended_at (rules.ENDED_STATUSES, rules.is_ended).
CREATE OR REPLACE FUNCTION ledger.is_ended(p_status text, p_ended_at timestamp with time zone)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT COALESCE(p_status IN ('canceled', 'incomplete_expired'), false)
           OR p_ended_at IS NOT NULL
$function$;

-- Cancelling: set to end at period end, or cancel_at at or before the current period end (or
-- with no known period end) (rules.is_cancelling_at).
CREATE OR REPLACE FUNCTION ledger.is_cancelling(
    p_cancel_at_period_end boolean, p_cancel_at timestamp with time zone,
    p_period_end timestamp with time zone)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT COALESCE(p_cancel_at_period_end, false)
           OR (p_cancel_at IS NOT NULL AND (p_period_end IS NULL OR p_cancel_at <= p_period_end))
$function$;

-- Account identity: explicit link, then the payload's tenant, then the customer's tenant,
-- then the customer id (rules.ACCOUNT_PRECEDENCE, rules.account_id). A plain COALESCE, so
-- that with NULL for the absent sources it inlines to the expression of the index
-- query_accounts_key, COALESCE(tenant_id, stripe_customer_id).
CREATE OR REPLACE FUNCTION ledger.account_id(
    p_link text, p_payload_tenant text, p_customer_tenant text, p_customer text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT COALESCE(p_link, p_payload_tenant, p_customer_tenant, p_customer)
$function$;

-- Money rounding: the exact ratio p_num / p_den of two integers, rounded half to even
-- (money.round_half_even). PostgreSQL's round() rounds half away from zero and a numeric
-- quotient is itself rounded, so neither is used for money.
CREATE OR REPLACE FUNCTION ledger.round_half_even(p_num numeric, p_den numeric)
 RETURNS bigint
 LANGUAGE sql
 IMMUTABLE STRICT PARALLEL SAFE
AS $function$
    SELECT (sign(p_num) * sign(p_den)
            * (q + CASE WHEN 2 * r > d THEN 1 WHEN 2 * r < d THEN 0 ELSE mod(q, 2) END))::bigint
    FROM (SELECT div(abs(p_num), abs(p_den)) AS q,
                 abs(p_num) - div(abs(p_num), abs(p_den)) * abs(p_den) AS r,
                 abs(p_den) AS d) x
$function$;

-- ===================================================================== 2. ledger core,
-- directory and query support (bodies from migrations 0002-0006, using section 1)

-- billing_events_guard
CREATE OR REPLACE FUNCTION ledger.billing_events_guard()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'ledger.billing_events is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'ledger.billing_events is append-only: rows cannot change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $function$;

-- committed_mrr_as_of
CREATE OR REPLACE FUNCTION ledger.committed_mrr_as_of(p_subscription_id text, p_occurred_at timestamp with time zone, p_stripe_event_id text)
 RETURNS bigint
 LANGUAGE sql
 STABLE
AS $function$
    SELECT committed_mrr FROM ledger.billing_events
    WHERE subscription_id = p_subscription_id
      AND committed_mrr IS NOT NULL
      AND (occurred_at, stripe_event_id) <= (p_occurred_at, p_stripe_event_id)
    ORDER BY occurred_at DESC, stripe_event_id DESC
    LIMIT 1
$function$;

-- directory_logins_guard
CREATE OR REPLACE FUNCTION ledger.directory_logins_guard()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    RAISE EXCEPTION 'ledger.logins is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $function$;

-- stripe_snapshots_guard (created by migration 0008: snapshots of drift's disaster recovery
-- and first-install import are append-only like billing_events)
CREATE OR REPLACE FUNCTION ledger.stripe_snapshots_guard()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    RAISE EXCEPTION 'ledger.stripe_snapshots is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $function$;

-- query_account_ids
CREATE OR REPLACE FUNCTION ledger.query_account_ids(p_customers text[])
 RETURNS text[]
 LANGUAGE sql
 STABLE
AS $function$
    SELECT COALESCE(array_agg(DISTINCT ledger.account_id(l.tenant_id, NULL, a.tenant_id,
                                                     a.stripe_customer_id)),
                    '{}')
    FROM ledger.accounts a JOIN unnest(p_customers) AS k(id) ON a.stripe_customer_id = k.id
    LEFT JOIN ledger.customer_links l ON l.stripe_customer_id = a.stripe_customer_id
$function$;

-- query_account_members
CREATE OR REPLACE FUNCTION ledger.query_account_members(p_account text)
 RETURNS TABLE(stripe_customer_id text, tenant_id text, name text, email text, currency text, deleted_at timestamp with time zone, stripe_created_at timestamp with time zone)
 LANGUAGE sql
 STABLE
AS $function$
    SELECT a.stripe_customer_id, l.tenant_id, a.name, a.email, a.currency, a.deleted_at,
           a.stripe_created_at
    FROM ledger.customer_links l
    JOIN ledger.accounts a ON a.stripe_customer_id = l.stripe_customer_id
    WHERE l.tenant_id = p_account
    UNION ALL
    SELECT a.stripe_customer_id, a.tenant_id, a.name, a.email, a.currency, a.deleted_at,
           a.stripe_created_at
    FROM ledger.accounts a
    WHERE ledger.account_id(NULL, NULL, a.tenant_id, a.stripe_customer_id) = p_account
      AND NOT EXISTS (SELECT 1 FROM ledger.customer_links l
                      WHERE l.stripe_customer_id = a.stripe_customer_id)
$function$;

-- query_day
CREATE OR REPLACE FUNCTION ledger.query_day(p_at timestamp with time zone)
 RETURNS date
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$ SELECT (p_at AT TIME ZONE 'UTC')::date $function$;

-- query_lock
CREATE OR REPLACE FUNCTION ledger.query_lock(p_namespace integer, p_keys text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    bucket integer;
BEGIN
    FOR bucket IN
        SELECT DISTINCT abs(hashtext(k) % 128) FROM unnest(p_keys) AS u(k)
        WHERE k IS NOT NULL ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(p_namespace, bucket);
    END LOOP;
END $function$;


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
-- query_move_account_mix: adds (p_sign 1) or removes (-1) the live rows of query_accounts
-- for p_ids to / from query_account_mix (0012); query_refresh_accounts calls it around its
-- rewrite, so the mix moves by (new - old).
CREATE OR REPLACE FUNCTION ledger.query_move_account_mix(p_ids text[], p_sign integer)
 RETURNS void
 LANGUAGE sql
AS $function$
    INSERT INTO ledger.query_account_mix AS m (created_day, plan, currency, n, committed_mrr)
    SELECT COALESCE(ledger.query_day(a.created_at), '-infinity'), a.plan,
           COALESCE(a.currency, ''), p_sign * count(*), p_sign * sum(a.committed_mrr)
    FROM ledger.query_accounts a JOIN unnest(p_ids) AS k(id) ON a.account_id = k.id
    WHERE a.deleted_at IS NULL
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (created_day, plan, currency) DO UPDATE
        SET n = m.n + EXCLUDED.n, committed_mrr = m.committed_mrr + EXCLUDED.committed_mrr
$function$;

-- query_touch (0021): the query_* triggers' one way to ask for a refresh of accounts, MRR
-- steps or invoice rows ('accounts', 'mrr', 'invoices': the three query_refresh_* they call).
-- The triggers stay the one home of WHICH rows a change touches; this decides WHEN they are
-- recomputed. Outside a deferring transaction (every writer but the projection's batches: the
-- gateway's, tests', a statement by hand) the refresh runs now, as before. A transaction that
-- has set ledger.query_defer = 'on' (set_config(..., true): the transaction only) only queues
-- the ids in the session's temporary table query_touches, and ledger.query_flush() refreshes
-- each kind once for the distinct ids of the whole batch: a live batch recomputed an account
-- up to four times (the accounts and subscriptions upserts, the billing events, a derived
-- refresh) and a new invoice twice (its insert, then its payment intent). A transaction that
-- defers and never flushes is flushed at COMMIT by the table's deferred constraint trigger
-- (query_on_touched), so no writer can leave stale rows behind.
-- p_since (0028, 'mrr' only): no MRR event before it changed, so the steps before it stand
-- and the refresh recomputes from there (query_refresh_mrr); NULL: from each subscription's
-- first event. The queue is query_touches (0028: with that column; a session that still has
-- 0021's query_touched from before the migration leaves it unused).
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

-- query_flush (0021): refreshes what the transaction queued through query_touch, each kind
-- once for its distinct ids, and empties the queue. The refreshes read only the source
-- tables, never each other's query_* rows, so their order does not change a row; they run in
-- the order of their query_lock namespaces (accounts 74001, MRR 74002, invoices 74003), the
-- same in every flush. A refresh writes only query_* tables and so queues nothing; the loop
-- is there in case one ever does. The MRR steps are recomputed from the earliest p_since of
-- the 'mrr' touches (0028), or from the start if one of them had none.
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

-- query_on_touched (0021): the backstop of query_touch's queue, a deferred constraint trigger
-- on pg_temp.query_touches (0028; query_touched before): at COMMIT (or SET CONSTRAINTS ...
-- IMMEDIATE) whatever is still queued is refreshed. After the batch's own query_flush the
-- queue is empty and each call finds nothing.
CREATE OR REPLACE FUNCTION ledger.query_on_touched()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM ledger.query_flush();
    RETURN NULL;
END $function$;

-- query_on_accounts (0020: an update refreshes only the accounts of rows whose account
-- columns changed)
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

-- query_on_billing_events (0016: also per UTC hour, query_event_hourly; 0028: the MRR
-- touch says from when)
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

-- query_on_customer_links (0017: also the tenants of the linked customers' drift events,
-- whose tenant-side drift check the link decides)
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
-- query_on_payments (0020: an update of the refund and credit totals alone refreshes no
-- invoice row)
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

-- query_on_tenants (0016: also the unlisted users)
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

-- query_refresh_accounts (0017: the customer-side drift check probes the partial index
-- once per customer, so a ledger without statistics does not scan billing_events per account;
-- 0020: only the rows that change are written, in place, instead of every row deleted and
-- inserted again; 0026: the subscriptions of an account read per customer through
-- subscriptions_customer, and each id computed once)
CREATE OR REPLACE FUNCTION ledger.query_refresh_accounts(p_ids text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_changed text[];
    v_rows ledger.query_accounts[];
BEGIN
    p_ids := ARRAY(SELECT DISTINCT k FROM unnest(p_ids) AS u(k) WHERE k IS NOT NULL);
    IF cardinality(p_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM ledger.query_lock(74001, p_ids);
    -- The rows as they should be (NULL for an id that is no account), compared with the
    -- stored ones: only the accounts whose row changes (or appears, or goes) are written and
    -- moved in the mix and facets.
    WITH fresh AS (
    SELECT ids.account_id,
        CASE WHEN t.tenant_id IS NOT NULL OR c.n > 0 THEN ROW(
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
        COALESCE(m.mixed, false))::ledger.query_accounts END AS r
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
    -- (0026) The account's subscriptions per customer (OFFSET 0 keeps the lookup per
    -- customer, through subscriptions_customer): `stripe_customer_id = ANY(c.customers)` was
    -- planned as a sequential scan of subscriptions per account on a ledger without
    -- statistics (a live ledger that started empty, until autovacuum's first ANALYZE), twice
    -- per account: accounts x subscriptions rows read per batch.
    LEFT JOIN LATERAL (
        SELECT s.subscription_id, s.plan, s.status, s.currency, s.current_period_end,
               s.cancel_at_period_end, s.cancel_at,
               NOT ledger.is_ended(s.status, s.ended_at) AS live
        FROM unnest(c.customers) AS cu(id)
        CROSS JOIN LATERAL (
            SELECT s1.subscription_id, s1.plan, s1.status, s1.currency, s1.current_period_end,
                   s1.cancel_at_period_end, s1.cancel_at, s1.ended_at, s1.state_event_created
            FROM ledger.subscriptions s1 WHERE s1.stripe_customer_id = cu.id OFFSET 0) s
        ORDER BY NOT ledger.is_ended(s.status, s.ended_at) DESC,
                 s.state_event_created DESC, s.subscription_id DESC
        LIMIT 1
    ) ps ON true
    LEFT JOIN LATERAL (
        SELECT sum(s.committed_mrr) FILTER (WHERE s.currency = ps.currency) AS committed,
               sum(s.forward_mrr) FILTER (WHERE s.currency = ps.currency) AS forward,
               bool_or(s.currency IS DISTINCT FROM ps.currency
                       AND (s.committed_mrr <> 0 OR s.forward_mrr <> 0)) AS mixed
        FROM unnest(c.customers) AS cu(id)
        CROSS JOIN LATERAL (
            SELECT s1.currency, s1.committed_mrr, s1.forward_mrr
            FROM ledger.subscriptions s1 WHERE s1.stripe_customer_id = cu.id OFFSET 0) s
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
    )
    -- (0026) each id once: a second unnest(p_ids) joined to fresh was planned, in the
    -- generic plan a session uses from its sixth call, as a nested loop over both id lists
    -- (ids squared comparisons per batch)
    SELECT array_agg(f.account_id), array_agg(f.r) FILTER (WHERE (f.r).account_id IS NOT NULL)
    INTO v_changed, v_rows
    FROM fresh f
    LEFT JOIN ledger.query_accounts q ON q.account_id = f.account_id
    WHERE q IS DISTINCT FROM f.r;
    IF v_changed IS NULL THEN
        RETURN;
    END IF;
    PERFORM ledger.query_move_account_mix(v_changed, -1);
    PERFORM ledger.query_move_account_facets(v_changed, -1);
    DELETE FROM ledger.query_accounts t USING unnest(v_changed) AS k(id)
    WHERE t.account_id = k.id
      AND NOT EXISTS (SELECT 1 FROM unnest(v_rows) AS n WHERE n.account_id = k.id);
    INSERT INTO ledger.query_accounts AS t
    SELECT n.* FROM unnest(v_rows) AS n ORDER BY n.account_id
    ON CONFLICT (account_id) DO UPDATE SET
        tenant_id = EXCLUDED.tenant_id, stripe_customer_ids = EXCLUDED.stripe_customer_ids,
        primary_customer_id = EXCLUDED.primary_customer_id, name = EXCLUDED.name,
        email = EXCLUDED.email, created_at = EXCLUDED.created_at,
        deleted_at = EXCLUDED.deleted_at, unsynced = EXCLUDED.unsynced,
        drift_detected = EXCLUDED.drift_detected, subscription_id = EXCLUDED.subscription_id,
        plan = EXCLUDED.plan, status = EXCLUDED.status, renewal_at = EXCLUDED.renewal_at,
        currency = EXCLUDED.currency, committed_mrr = EXCLUDED.committed_mrr,
        forward_mrr = EXCLUDED.forward_mrr, mixed_currency = EXCLUDED.mixed_currency;
    PERFORM ledger.query_move_account_mix(v_changed, 1);
    PERFORM ledger.query_move_account_facets(v_changed, 1);
    DELETE FROM ledger.query_account_mix WHERE n = 0;
    DELETE FROM ledger.query_account_facets WHERE n = 0;
END $function$;

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
-- query_refresh_mrr (0028: from p_since). A subscription's steps are a running computation
-- over its MRR events in (occurred_at, stripe_event_id) order: each event's committed and
-- forward MRR and currency carried forward, a step where they change. Recomputing every
-- touched subscription from its first event made each live batch cost the length of the
-- subscriptions' histories, growing with the ledger's age. With p_since the events before it
-- are not read: the state just before p_since is the last stored step before it (nothing
-- changes between steps; none: zero MRR, no currency, never had MRR), and only the steps
-- from p_since on are recomputed and compared. NULL: from the first event, as before. The
-- caller vouches that no event before p_since changed (billing_events only grows: the
-- earliest new event is such a bound; the property test delivers events in any order).
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

-- query_add_session_hours: adds p_sign x the not-revoked sessions of p_users (every user when
-- NULL) to query_session_hourly, per UTC hour of last_seen_at, whether or not the directory
-- lists their users: the callers know (0019). Hours whose count returns to 0 are no row.
-- Two statements, not one with "p_users IS NULL OR": a cached generic plan of that would
-- scan every session for a few users' (sessions_user_seen serves the second).
CREATE OR REPLACE FUNCTION ledger.query_add_session_hours(p_users text[], p_sign integer)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF p_users IS NULL THEN
        INSERT INTO ledger.query_session_hourly AS h (hour, n)
        SELECT date_trunc('hour', s.last_seen_at, 'UTC'), p_sign * count(*)
        FROM ledger.sessions s WHERE s.revoked_at IS NULL
        GROUP BY 1 ORDER BY 1
        ON CONFLICT (hour) DO UPDATE SET n = h.n + EXCLUDED.n;
    ELSIF cardinality(p_users) = 0 THEN
        RETURN;
    ELSE
        INSERT INTO ledger.query_session_hourly AS h (hour, n)
        SELECT date_trunc('hour', s.last_seen_at, 'UTC'), p_sign * count(*)
        FROM ledger.sessions s JOIN unnest(p_users) AS u(id) ON s.user_id = u.id
        WHERE s.revoked_at IS NULL
        GROUP BY 1 ORDER BY 1
        ON CONFLICT (hour) DO UPDATE SET n = h.n + EXCLUDED.n;
    END IF;
    IF p_sign < 0 THEN
        DELETE FROM ledger.query_session_hourly WHERE n = 0;
    END IF;
END $function$;

-- query_on_session_hours: a session write moves query_session_hourly (0019): the old row out
-- of its hour, the new row into its own, each only when not revoked and its user listed (not
-- in query_unlisted_users). Row level, and the UPDATE trigger's WHEN skips a touch that stays
-- in the same hour (most RecordSession calls) before any function runs. The two hours are
-- moved in time order, so concurrent touches lock the hour rows in the same order.
CREATE OR REPLACE FUNCTION ledger.query_on_session_hours()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_old timestamptz;
    v_new timestamptz;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.revoked_at IS NULL AND NOT EXISTS (
            SELECT 1 FROM ledger.query_unlisted_users u WHERE u.user_id = OLD.user_id) THEN
        v_old := date_trunc('hour', OLD.last_seen_at, 'UTC');
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.revoked_at IS NULL AND NOT EXISTS (
            SELECT 1 FROM ledger.query_unlisted_users u WHERE u.user_id = NEW.user_id) THEN
        v_new := date_trunc('hour', NEW.last_seen_at, 'UTC');
    END IF;
    IF v_old IS NOT DISTINCT FROM v_new THEN
        RETURN NULL;
    END IF;
    IF v_new IS NOT NULL AND (v_old IS NULL OR v_new < v_old) THEN
        INSERT INTO ledger.query_session_hourly AS h (hour, n) VALUES (v_new, 1)
        ON CONFLICT (hour) DO UPDATE SET n = h.n + 1;
    END IF;
    IF v_old IS NOT NULL THEN
        UPDATE ledger.query_session_hourly SET n = n - 1 WHERE hour = v_old;
        DELETE FROM ledger.query_session_hourly WHERE hour = v_old AND n = 0;
    END IF;
    IF v_new IS NOT NULL AND v_old IS NOT NULL AND v_new > v_old THEN
        INSERT INTO ledger.query_session_hourly AS h (hour, n) VALUES (v_new, 1)
        ON CONFLICT (hour) DO UPDATE SET n = h.n + 1;
    END IF;
    RETURN NULL;
END $function$;

-- query_on_unlisted_session_hours: a user entering query_unlisted_users takes its sessions
-- out of query_session_hourly, one leaving it puts them back (0019). A TRUNCATE (the
-- rebuild's, query_support_rebuild) lists every user again: the hours are counted afresh
-- from the sessions, and the rebuild's refill of the unlisted users then takes theirs out
-- again, so the rebuild recomputes query_session_hourly from scratch too.
CREATE OR REPLACE FUNCTION ledger.query_on_unlisted_session_hours()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM ledger.query_session_hourly;
        PERFORM ledger.query_add_session_hours(NULL, 1);
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM ledger.query_add_session_hours(ARRAY(SELECT user_id FROM old_rows), 1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM ledger.query_add_session_hours(ARRAY(SELECT user_id FROM new_rows), -1);
    END IF;
    RETURN NULL;
END $function$;

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

