"""A small hand-built ledger around NOW (2025-06-15 12:00 UTC) with known answers.

Seven-day period = 2025-06-09 .. 06-15 (whole UTC days), prior = 06-02 .. 06-08.
FX: EUR=1.08, JPY=0.0067 (USD platform); GBP has no rate.

Accounts (live): t_alpha (tenant + cus_a, day -20), cus_b (EUR, -3), cus_c (JPY, -2),
cus_d (GBP, -1), cus_e (-10, prior period), t_free (tenant only: unsynced, -30).
Soft-deleted: t_gone (tenant deleted, with cus_g).

MRR: sub_a 1000 USD (day -20) -> upgraded 1500 (day -2) -> cancelling (forward 0, day -1);
sub_b 2000 EUR (day -3); sub_c 10000 JPY (day -2); sub_e 500 USD (day -10) -> cancelled
immediately (day -4).

Revenue (ex tax, USD minor units): in_a1 +1000 (06-10), in_a2 +300 (06-11), in_b1 +1080
(EUR 1000, 06-12), cn_b1 -1080 (credit note without refund, 06-13), in_c1 +6700 (JPY 10000,
06-13), re_a1 -500 (refund 600 gross of 1200 incl. 200 tax, no credit note, 06-14), cn_a2 -300
(credit note covering re_a2, 06-14; the refund adds no second reversal). in_d1 GBP 999 paid
(unconverted); in_x unpaid. Prior period: in_e0 +500 (06-05).
"""

from __future__ import annotations

from tests.ledger.queries.conftest import NOW, Ledger, days_ago

PERIOD_REVENUE = 1000 + 300 + 1080 - 1080 + 6700 - 500 - 300
PRIOR_REVENUE = 500
COMMITTED_NOW = 1500 + 2160 + 6700
FORWARD_NOW = 0 + 2160 + 6700
FORWARD_PRIOR_END = 1000 + 500


def build(ledger: Ledger) -> None:
    ledger.tenant("t_alpha", "Alpha Corp", days_ago(20))
    ledger.customer("cus_a", name="Alpha (Stripe)", created_at=days_ago(20), tenant_id="t_alpha")
    ledger.customer("cus_b", name="Bravo GmbH", created_at=days_ago(3), currency="EUR")
    ledger.customer("cus_c", name="Charlie KK", created_at=days_ago(2), currency="JPY")
    ledger.customer("cus_d", name="Delta Ltd", created_at=days_ago(1), currency="GBP")
    ledger.customer("cus_e", name="Echo Inc", created_at=days_ago(10))
    ledger.tenant("t_free", "Free Trial Co", days_ago(30))
    ledger.tenant("t_gone", "Gone Ltd", days_ago(2), deleted_at=days_ago(1))
    ledger.customer("cus_g", name="Gone (Stripe)", created_at=days_ago(2), tenant_id="t_gone")

    ledger.subscription(
        "sub_a", "cus_a", plan="Pro", mrr=1500, forward=0, cancel_at_period_end=True
    )
    ledger.subscription("sub_b", "cus_b", plan="Pro", mrr=2000, currency="EUR")
    ledger.subscription("sub_c", "cus_c", plan="Business", mrr=10000, currency="JPY")
    ledger.subscription(
        "sub_e", "cus_e", plan="Starter", mrr=0, status="canceled", ended_at=days_ago(4)
    )

    ev = ledger.event
    ev("SubscriptionCreated", days_ago(20), customer_id="cus_a", subscription_id="sub_a",
       committed=1000, delta=1000)
    ev("SubscriptionCreated", days_ago(10), customer_id="cus_e", subscription_id="sub_e",
       committed=500, delta=500)
    ev("SubscriptionImmediatelyCancelled", days_ago(4), customer_id="cus_e",
       subscription_id="sub_e", committed=0, delta=-500)
    ev("SubscriptionCreated", days_ago(3), customer_id="cus_b", subscription_id="sub_b",
       committed=2000, delta=2000, currency="EUR")
    ev("SubscriptionUpgraded", days_ago(2), customer_id="cus_a", subscription_id="sub_a",
       committed=1500, delta=500)
    ev("SubscriptionCreated", days_ago(2, hours=-1), customer_id="cus_c",
       subscription_id="sub_c", committed=10000, delta=10000, currency="JPY")
    ev("SubscriptionCancelled", days_ago(1), customer_id="cus_a", subscription_id="sub_a",
       committed=1500, forward=0, delta=0)
    # rows without subscription state: committed MRR carried
    ev("SubscriptionRenewed", days_ago(0, hours=3), customer_id="cus_a",
       subscription_id="sub_a", committed=None, forward=None, event_id="evt_renewal_a",
       stripe_event_type="invoice.paid")
    ev("NoOp", days_ago(0, hours=2), customer_id="cus_a", subscription_id="sub_a",
       committed=None, forward=None, event_id="evt_noop_a", stripe_event_type="invoice.updated")
    ev("PaymentRefunded", days_ago(1), customer_id="cus_a", committed=None, forward=None,
       refund_amount=600, event_id="evt_refund_a", stripe_event_type="charge.refunded")
    ev("BillingInfoUpdated", days_ago(5), customer_id="cus_b", committed=None, forward=None,
       currency=None, event_id="evt_info_b", stripe_event_type="customer.updated")

    inv = ledger.invoice
    inv("in_a1", "cus_a", total=1200, tax=200, created=days_ago(5), paid_at=days_ago(5))
    inv("in_a2", "cus_a", total=300, created=days_ago(4), paid_at=days_ago(4))
    inv("in_b1", "cus_b", total=1000, created=days_ago(3), paid_at=days_ago(3), currency="EUR")
    inv("in_c1", "cus_c", total=10000, created=days_ago(2), paid_at=days_ago(2), currency="JPY")
    inv("in_d1", "cus_d", total=999, created=days_ago(1), paid_at=days_ago(1), currency="GBP")
    inv("in_x", "cus_d", total=5000, created=days_ago(1), currency="USD")
    inv("in_e0", "cus_e", total=500, created=days_ago(10), paid_at=days_ago(10))
    ledger.refund("re_a1", "in_a1", amount=600, at=days_ago(1))
    ledger.credit_note("cn_b1", "in_b1", total=1000, at=days_ago(2), currency="EUR")
    ledger.refund("re_a2", "in_a2", amount=300, at=days_ago(1))
    ledger.credit_note("cn_a2", "in_a2", total=300, at=days_ago(1), refund_ids=("re_a2",))

    # directory: u1 active now (login day -2, session seen an hour ago), u2 active in prior
    ledger.execute(
        "INSERT INTO ledger.users (user_id, email, created_at) VALUES"
        " ('u1', 'u1@example.com', %s), ('u2', 'u2@example.com', %s),"
        " ('u3', 'u3@example.com', %s)",
        (days_ago(60), days_ago(60), days_ago(60)),
    )
    ledger.execute(
        "INSERT INTO ledger.memberships (user_id, tenant_id, role, status) VALUES"
        " ('u1', 't_alpha', 'owner', 'active'), ('u2', 't_alpha', 'member', 'active'),"
        " ('u3', 't_alpha', 'member', 'active')"
    )
    ledger.execute(
        "INSERT INTO ledger.logins (user_id, tenant_id, at, method, outcome) VALUES"
        " ('u1', 't_alpha', %s, 'password', 'success'),"
        " ('u2', 't_alpha', %s, 'password', 'success'),"
        " ('u3', 't_alpha', %s, 'password', 'failure')",
        (days_ago(2), days_ago(10), days_ago(1)),
    )
    ledger.execute(
        "INSERT INTO ledger.sessions (session_id, user_id, started_at, last_seen_at) VALUES"
        " ('s1', 'u1', %s, %s), ('s2', 'u2', %s, %s)",
        (days_ago(2), NOW.replace(hour=11), days_ago(10), days_ago(9)),
    )
