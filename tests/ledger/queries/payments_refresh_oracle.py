"""The payments refund/credit refresh as it was before helper livepg6's rewrite: the oracle.

Kept verbatim (only here, never run by the service): tests/ledger/queries/
test_payments_refresh.py compares the rewritten ``PAYMENTS_REFRESH`` of
services/ledger/projection.py against it on random ledgers, and bench/ledger_writer_bench.py
``--explain-payments`` prints both plans on the same never-analyzed ledger. Its refunds
lateral ORs a payment-intent and a charge match in one WHERE; on a ledger without statistics
the planner may answer that with a sequential scan of refunds per payment.
"""

OLD_PAYMENTS_REFRESH = """UPDATE {s}.payments p
SET amount_refunded = d.refunded, refunded_at = d.refunded_at,
    amount_credited = d.credited, credit_noted_at = d.credit_noted_at
FROM (
    SELECT p2.invoice_id,
           GREATEST(COALESCE(r.amount, 0), COALESCE(ch.amount, 0)) AS refunded,
           CASE WHEN COALESCE(ch.amount, 0) > COALESCE(r.amount, 0) THEN ch.at ELSE r.at END
               AS refunded_at,
           COALESCE(c.amount, 0) AS credited, c.at AS credit_noted_at
    FROM {s}.payments p2
    LEFT JOIN LATERAL (
        SELECT sum(x.amount) AS amount, max(x.refund_created) AS at FROM {s}.refunds x
        WHERE ((x.payment_intent_id IS NOT NULL AND x.payment_intent_id = p2.payment_intent_id)
               OR (x.charge_id IS NOT NULL AND x.charge_id = p2.invoice_charge_id))
          AND (x.status IS NULL OR x.status NOT IN ('failed', 'canceled'))
        HAVING count(*) > 0
    ) r ON true
    LEFT JOIN LATERAL (
        SELECT sum(x.amount_refunded) AS amount, max(x.refunded_at) AS at FROM {s}.charges x
        WHERE (x.payment_intent_id IS NOT NULL AND x.payment_intent_id = p2.payment_intent_id)
           OR x.charge_id = p2.invoice_charge_id
        HAVING count(*) > 0
    ) ch ON true
    LEFT JOIN LATERAL (
        SELECT sum(COALESCE(n.total, n.amount)) AS amount, max(n.credit_note_created) AS at
        FROM {s}.credit_notes n
        WHERE n.invoice_id = p2.invoice_id AND n.status IS DISTINCT FROM 'void'
        HAVING count(*) > 0
    ) c ON true
    WHERE {keys}
) d
WHERE p.invoice_id = d.invoice_id
  AND (p.amount_refunded, p.refunded_at, p.amount_credited, p.credit_noted_at)
      IS DISTINCT FROM (d.refunded, d.refunded_at, d.credited, d.credit_noted_at)
"""
