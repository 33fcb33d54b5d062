-- Frozen copy: the function 0026_live9 replaces, as it leaves it.

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
