"""Back-office read queries: p50/p95 of every dashboard and list RPC over gRPC, at scale.

Fills the ledger tables synthetically with ``generate_series`` SQL (the triggers of migration
0004 maintain the query tables as they would under the projection; the fill time is printed
too), then calls each RPC ``--runs`` times through a real gRPC server on loopback and prints
p50/p95 per query with the ratio of its p50 to an in-run baseline: ``SELECT count(*) FROM
ledger.accounts`` on the same engine (and a primary-key lookup for reference).

    python -m bench.ledger_queries_bench                 # small: 2,000 accounts, 40,000 events
    python -m bench.ledger_queries_bench --full          # 50,000 accounts, 1,000,000 events
    python -m bench.ledger_queries_bench --accounts 10000 --events 200000 --runs 50

Without ``--database-url`` an embedded PostgreSQL is started in a temporary folder; with it,
the database must be freshly migrated and empty (billing_events is append-only), unless
``--filled`` says an earlier run already filled it at the same ``--accounts`` / ``--events``:
then the fill (3 minutes at the full size) is skipped and the database only migrated to the
head, so a query change can be measured again and again on the same rows:

    python -m bench.ledger_queries_bench --full --database-url postgresql://... --filled
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from billing.common.v1 import common_pb2
from billing.ledger.v1 import ledger_pb2_grpc
from billing.ledger.v1 import queries_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text

from services.common.config import libpq_url
from services.common.db import make_async_engine
from services.common.grpc_client import aio_channel
from services.common.grpc_server import GrpcServer
from services.common.migrate import upgrade_to_head
from services.devstack.embedded import EmbeddedPostgres, free_port
from services.ledger.queries import LedgerQueriesMixin
from services.ledger.queries.fx import Fx

AS_OF = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
SPAN_DAYS = 730
CHUNK = 50_000
# Plans ['Starter monthly', 'Pro monthly', 'Business monthly', 'Starter yearly', 'Pro yearly',
# 'Enterprise'] and currencies by account number, spelled out in the SQL below.
FX = Fx("USD", {"EUR": Decimal("1.08"), "JPY": Decimal("0.0067")})

# i = account number; the history spans SPAN_DAYS (730) days before AS_OF.
ACCOUNTS_SQL = """
INSERT INTO ledger.tenants (tenant_id, name, created_at, deleted_at)
SELECT 't_' || i, 'Tenant ' || i || ' ' || substr(md5(i::text), 1, 8),
       %(t0)s + (i::float / %(n)s) * interval '730 days',
       CASE WHEN i %% 97 = 0 THEN %(t0)s + interval '730 days' END
FROM generate_series(0, %(n)s - 1) AS i WHERE i %% 2 = 0 OR i %% 50 = 1;

INSERT INTO ledger.accounts (stripe_customer_id, tenant_id, name, email, currency,
                             stripe_created_at, state_event_created, state_event_id)
SELECT 'cus_' || i, CASE WHEN i %% 2 = 0 THEN 't_' || i END,
       'Customer ' || substr(md5(i::text), 1, 10), 'c' || i || '@example.com',
       (ARRAY['USD','EUR','JPY','USD','EUR'])[1 + i %% 5],
       %(t0)s + (i::float / %(n)s) * interval '730 days',
       %(t0)s + (i::float / %(n)s) * interval '730 days', 'evt_cus_' || i
FROM generate_series(0, %(n)s - 1) AS i WHERE i %% 50 <> 1;
"""

SUBSCRIPTIONS_SQL = """
INSERT INTO ledger.subscriptions (subscription_id, stripe_customer_id, status, plan, unit_amount,
    quantity, "interval", interval_count, currency, current_period_start, current_period_end,
    cancel_at_period_end, committed_mrr, forward_mrr, state_event_created, state_event_id)
SELECT 'sub_' || i, 'cus_' || i,
       (ARRAY['active','active','active','active','past_due','trialing','canceled',
              'active','active','paused'])[1 + i %% 10],
       (ARRAY['Starter monthly','Pro monthly','Business monthly','Starter yearly',
              'Pro yearly','Enterprise'])[1 + i %% 6],
       1000 * (1 + i %% 6), 1, 'month', 1,
       (ARRAY['USD','EUR','JPY','USD','EUR'])[1 + i %% 5],
       %(as_of)s - (i %% 30) * interval '1 day',
       %(as_of)s + (30 - i %% 30) * interval '1 day',
       i %% 13 = 0,
       CASE WHEN i %% 10 IN (5, 6, 9) THEN 0 ELSE 1000 * (1 + i %% 6) * (1 + (i %% 3)) END,
       CASE WHEN i %% 10 IN (5, 6, 9) OR i %% 13 = 0 THEN 0
            ELSE 1000 * (1 + i %% 6) * (1 + (i %% 3)) END,
       %(as_of)s, 'evt_sub_' || i
FROM generate_series(0, %(n)s - 1) AS i WHERE i %% 50 <> 1;
"""

# Event k belongs to subscription k / per_sub (sub-major, so a chunk touches few subscriptions),
# its j-th event; types by a hash of k, committed MRR only for subscription-state types.
EVENTS_SQL = """
INSERT INTO ledger.billing_events (stripe_event_id, stripe_event_type, event_type,
    tenant_id, stripe_customer_id, subscription_id, committed_mrr, forward_mrr, amount_delta,
    currency, occurred_at)
SELECT 'evt_' || lpad(k::text, 9, '0'), 'customer.subscription.updated', t.type,
       NULL, 'cus_' || s, 'sub_' || s,
       CASE WHEN t.stateful THEN 1000 * (1 + s %% 6) * (1 + ((s + j / 5) %% 3)) END,
       CASE WHEN t.stateful THEN 1000 * (1 + s %% 6) * (1 + ((s + j / 5) %% 3)) END,
       CASE WHEN t.type IN ('SubscriptionUpgraded', 'SubscriptionDowngraded') THEN 1000 END,
       (ARRAY['USD','EUR','JPY','USD','EUR'])[1 + s %% 5],
       %(t0)s + (s::float / %(n)s) * interval '730 days'
              + j * ((%(as_of)s - (%(t0)s + (s::float / %(n)s) * interval '730 days'))
                     / %(per_sub)s)
              + (k %% 3600) * interval '1 second'
FROM generate_series(%(lo)s::int, %(hi)s::int) AS k
CROSS JOIN LATERAL (SELECT k / %(per_sub)s AS s, k %% %(per_sub)s AS j) AS ij
CROSS JOIN LATERAL (
    SELECT CASE WHEN ij.j = 0 THEN 'SubscriptionCreated'
                ELSE (ARRAY['SubscriptionRenewed','SubscriptionRenewed','SubscriptionRenewed',
                            'NoOp','NoOp','NoOp','SubscriptionUpgraded','SubscriptionDowngraded',
                            'PaymentFailed','PaymentRecovered','SubscriptionCancelled',
                            'SubscriptionReactivated','BillingInfoUpdated',
                            'PaymentMethodUpdated','SubscriptionPastDue','PaymentRefunded',
                            'SubscriptionDowngradeScheduled','NoOp','NoOp','Unclassified'])
                     [1 + (hashint4(k) & 2147483647) %% (CASE WHEN k %% 53 = 0 THEN 20
                                                              ELSE 19 END)]
           END AS type
) AS t0
CROSS JOIN LATERAL (
    SELECT t0.type,
           t0.type NOT IN ('SubscriptionRenewed', 'PaymentFailed', 'PaymentRecovered',
                           'BillingInfoUpdated', 'PaymentMethodUpdated', 'PaymentRefunded')
           AS stateful
) AS t
WHERE ij.s %% 50 <> 1;
"""

# Invoice p: subscription p % n, its (p / n)-th monthly invoice (only those before AS_OF).
PAYMENTS_SQL = """
INSERT INTO ledger.payments (invoice_id, stripe_customer_id, subscription_id, number, status,
    billing_reason, currency, amount_due, amount_paid, total, subtotal, tax, amount_ex_tax,
    hosted_invoice_url, invoice_pdf, invoice_created, paid_at, payment_intent_id,
    invoice_charge_id, invoice_payment_intent_id, state_event_created, state_event_id)
SELECT 'in_' || p, 'cus_' || s, 'sub_' || s, 'N-' || p,
       CASE WHEN p %% 20 = 0 THEN 'open' ELSE 'paid' END, 'subscription_cycle',
       (ARRAY['USD','EUR','JPY','USD','EUR'])[1 + s %% 5], amount,
       CASE WHEN p %% 20 = 0 THEN 0 ELSE amount END,
       amount, amount - amount / 11, amount / 11, amount - amount / 11,
       'https://invoice.example/in_' || p, 'https://invoice.example/in_' || p || '.pdf',
       at, CASE WHEN p %% 20 <> 0 THEN at + interval '1 hour' END, 'pi_' || p, 'ch_' || p,
       'pi_' || p, at, 'evt_in_' || p
FROM generate_series(%(lo)s::int, %(hi)s::int) AS p
CROSS JOIN LATERAL (SELECT p %% %(n)s AS s, p / %(n)s AS m) AS sm
CROSS JOIN LATERAL (
    SELECT 1100 * (1 + sm.s %% 6) AS amount,
           %(t0)s + (sm.s::float / %(n)s) * interval '730 days' + sm.m * interval '30 days'
               AS at
) AS x
WHERE sm.s %% 50 <> 1 AND x.at < %(as_of)s;
"""

REVERSALS_SQL = """
INSERT INTO ledger.refunds (refund_id, charge_id, payment_intent_id, stripe_customer_id, amount,
    currency, status, refund_created, state_event_created, state_event_id)
SELECT 're_' || substr(invoice_id, 4), invoice_charge_id, payment_intent_id,
       stripe_customer_id, total / 2, currency, 'succeeded', paid_at + interval '3 days',
       paid_at, 'evt_re_' || invoice_id
FROM ledger.payments WHERE paid_at IS NOT NULL AND hashtext(invoice_id) %% 50 = 0;

INSERT INTO ledger.credit_notes (credit_note_id, invoice_id, stripe_customer_id, amount, total,
    currency, status, refund_ids, credit_note_created, state_event_created, state_event_id)
SELECT 'cn_' || substr(invoice_id, 4), invoice_id, stripe_customer_id, total, total, currency,
       'issued', CASE WHEN hashtext(invoice_id) %% 50 = 0
                      THEN ARRAY['re_' || substr(invoice_id, 4)] ELSE '{}' END,
       paid_at + interval '3 days', paid_at, 'evt_cn_' || invoice_id
FROM ledger.payments WHERE paid_at IS NOT NULL AND hashtext(invoice_id) %% 100 IN (0, 7);
"""

# Subscriptions end in the state of their latest billing event, as under the projection.
ALIGN_SQL = """
UPDATE ledger.subscriptions s
SET committed_mrr = l.committed, forward_mrr = l.forward
FROM (
    SELECT DISTINCT ON (subscription_id) subscription_id, committed_mrr AS committed,
           forward_mrr AS forward
    FROM ledger.billing_events WHERE committed_mrr IS NOT NULL
    ORDER BY subscription_id, occurred_at DESC, stripe_event_id DESC
) l
WHERE s.subscription_id = l.subscription_id
  AND (s.committed_mrr, s.forward_mrr) IS DISTINCT FROM (l.committed, l.forward);
"""

DIRECTORY_SQL = """
INSERT INTO ledger.users (user_id, email, created_at)
SELECT 'u_' || i, 'u' || i || '@example.com', %(t0)s FROM generate_series(0, %(users)s - 1) i;
INSERT INTO ledger.memberships (user_id, tenant_id, role, status)
SELECT 'u_' || i, 't_' || ((i * 2) %% %(n)s), 'member', 'active'
FROM generate_series(0, %(users)s - 1) i;
INSERT INTO ledger.logins (user_id, tenant_id, at, method, outcome)
SELECT 'u_' || (i %% %(users)s), NULL, %(as_of)s - (i %% 120) * interval '1 day'
       - (i %% 1440) * interval '1 minute', 'password', 'success'
FROM generate_series(0, %(logins)s - 1) i;
INSERT INTO ledger.sessions (session_id, user_id, started_at, last_seen_at)
SELECT 's_' || i, 'u_' || i, %(as_of)s - interval '3 days',
       %(as_of)s - (i %% 72) * interval '1 hour'
FROM generate_series(0, %(users)s - 1) i;
"""


def fill(url: str, accounts: int, events: int) -> dict[str, float]:
    """Fill the ledger; returns seconds per step."""
    t0 = AS_OF - timedelta(days=SPAN_DAYS)
    per_sub = max(1, events // accounts)
    base = {"n": accounts, "t0": t0, "as_of": AS_OF, "per_sub": per_sub}
    timings: dict[str, float] = {}
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:

        def step(name: str, statement: str, params: dict[str, Any]) -> None:
            started = time.perf_counter()
            for part in statement.split(";\n"):
                if part.strip():
                    conn.execute(part, params)  # type: ignore[arg-type]
            conn.execute("ANALYZE")  # what autovacuum does between batches in production
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
            print(f"  {name}: {timings[name]:.1f}s", flush=True)

        step("accounts", ACCOUNTS_SQL, base)
        step("subscriptions", SUBSCRIPTIONS_SQL, base)
        total_events = per_sub * accounts
        for lo in range(0, total_events, CHUNK):
            hi = min(lo + CHUNK, total_events) - 1
            step("billing_events", EVENTS_SQL, {**base, "lo": lo, "hi": hi})
        step("align subscriptions", ALIGN_SQL, {})
        invoices = max(accounts, events // 4)
        for lo in range(0, invoices, CHUNK):
            hi = min(lo + CHUNK, invoices) - 1
            step("payments", PAYMENTS_SQL, {**base, "lo": lo, "hi": hi})
        step("refunds+credit_notes", REVERSALS_SQL, {})
        users = max(100, accounts // 2)
        step("directory", DIRECTORY_SQL, {**base, "users": users, "logins": users * 10})
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        timings["vacuum analyze"] = time.perf_counter() - started
    return timings


class _Servicer(LedgerQueriesMixin, ledger_pb2_grpc.LedgerServiceServicer):
    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._query_fx = FX


def _ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _measure(call: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    await call()  # warm-up (plans, caches)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def run_queries(url: str, runs: int, accounts: int) -> list[tuple[str, list[float]]]:
    engine = make_async_engine(url, statement_timeout_ms=60_000)
    server = GrpcServer(0, "127.0.0.1")
    server.add(
        ledger_pb2_grpc.add_LedgerServiceServicer_to_server,  # type: ignore[arg-type]
        _Servicer(engine),  # type: ignore[abstract]
        ["billing.ledger.v1.LedgerService"],
    )
    await server.start()
    channel = aio_channel(f"127.0.0.1:{server.port}")
    stub = ledger_pb2_grpc.LedgerServiceStub(channel)
    as_of = _ts(AS_OF)
    some = f"t_{(accounts // 4) * 2}"  # an even account: it has a tenant
    results: list[tuple[str, list[float]]] = []
    try:

        async def baseline_count() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT count(*) FROM ledger.accounts"))

        async def baseline_pk() -> None:
            async with engine.connect() as conn:
                await conn.execute(
                    text("SELECT * FROM ledger.billing_events WHERE stripe_event_id = :e"),
                    {"e": "evt_000000042"},
                )

        second_page = await stub.ListAccounts(
            pb.ListAccountsRequest(sort_by="mrr", descending=True)
        )
        event_page = await stub.ListBillingEvents(pb.ListBillingEventsRequest())
        last_month = common_pb2.Period(start=_ts(AS_OF - timedelta(days=30)), end=as_of)
        off = timedelta(minutes=17)
        off_hour = common_pb2.Period(start=_ts(AS_OF - timedelta(days=30) - off),
                                     end=_ts(AS_OF - off))
        calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("baseline: count(*) accounts", baseline_count),
            ("baseline: pk lookup", baseline_pk),
            *(
                (
                    f"GetDashboard {d}d",
                    lambda d=d: stub.GetDashboard(
                        pb.GetDashboardRequest(period_days=d, as_of=as_of)
                    ),
                )
                for d in (7, 30, 90)
            ),
            # as_of off the hour: the active sessions read their two partial hours (0019)
            ("GetDashboard 90d :17", lambda: stub.GetDashboard(pb.GetDashboardRequest(
                period_days=90, as_of=_ts(AS_OF - timedelta(minutes=17))))),
            ("ListAccounts name", lambda: stub.ListAccounts(pb.ListAccountsRequest())),
            ("ListAccounts mrr desc p2", lambda: stub.ListAccounts(pb.ListAccountsRequest(
                sort_by="mrr", descending=True,
                page=common_pb2.PageRequest(page_token=second_page.page.next_page_token)))),
            ("ListAccounts renewal", lambda: stub.ListAccounts(
                pb.ListAccountsRequest(sort_by="renewal"))),
            ("ListAccounts plans+status", lambda: stub.ListAccounts(pb.ListAccountsRequest(
                plans=["Pro monthly", "Enterprise"], statuses=["active", "past_due"],
                sort_by="status", descending=True))),
            ("ListAccounts search", lambda: stub.ListAccounts(
                pb.ListAccountsRequest(search="customer 1a"))),
            ("ListAccounts drift", lambda: stub.ListAccounts(
                pb.ListAccountsRequest(drift_detected=True, sort_by="created"))),
            # every account matches: the count stops at its cap (0014), the page walks the index
            ("ListAccounts search broad", lambda: stub.ListAccounts(
                pb.ListAccountsRequest(search="customer"))),
            ("ListAccounts created desc", lambda: stub.ListAccounts(
                pb.ListAccountsRequest(sort_by="created", descending=True))),
            # a rare (plan, status) pair: the matches read and sorted (0016)
            ("ListAccounts rare pair", lambda: stub.ListAccounts(pb.ListAccountsRequest(
                plans=["Pro yearly"], statuses=["past_due"], sort_by="created",
                descending=True))),
            ("GetAccount", lambda: stub.GetAccount(
                pb.GetAccountRequest(account_id=some, as_of=as_of))),
            ("ListBillingEvents all", lambda: stub.ListBillingEvents(
                pb.ListBillingEventsRequest())),
            ("ListBillingEvents p2", lambda: stub.ListBillingEvents(pb.ListBillingEventsRequest(
                page=common_pb2.PageRequest(page_token=event_page.page.next_page_token)))),
            ("ListBillingEvents mrr 30d", lambda: stub.ListBillingEvents(
                pb.ListBillingEventsRequest(lens=pb.EVENT_LENS_MRR_IMPACT, period=last_month))),
            # off the hour: the partial hours at both ends are read row by row (0016)
            ("ListBillingEvents mrr 30d :17", lambda: stub.ListBillingEvents(
                pb.ListBillingEventsRequest(lens=pb.EVENT_LENS_MRR_IMPACT, period=off_hour))),
            ("ListBillingEvents other", lambda: stub.ListBillingEvents(
                pb.ListBillingEventsRequest(lens=pb.EVENT_LENS_OTHER))),
            ("ListBillingEvents account", lambda: stub.ListBillingEvents(
                pb.ListBillingEventsRequest(account_id=some))),
            ("ListInvoices all", lambda: stub.ListInvoices(pb.ListInvoicesRequest())),
            ("ListInvoices reversals", lambda: stub.ListInvoices(
                pb.ListInvoicesRequest(lens=pb.INVOICE_LENS_REVERSALS))),
            ("ListInvoices account 30d", lambda: stub.ListInvoices(
                pb.ListInvoicesRequest(account_id=some, period=last_month))),
            ("CheckMrrConsistency", lambda: stub.CheckMrrConsistency(
                pb.CheckMrrConsistencyRequest(as_of=as_of))),
        ]
        for name, call in calls:
            results.append((name, await _measure(call, runs)))
        check = await stub.CheckMrrConsistency(pb.CheckMrrConsistencyRequest(as_of=as_of))
        print(f"consistency: kpi={check.kpi_mrr.amount_minor} trend="
              f"{check.trend_mrr.amount_minor} consistent={check.consistent}")
    finally:
        await channel.close(grace=None)
        await server.stop(grace=0)
        await engine.dispose()
    return results


@contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    root = Path(tempfile.mkdtemp(prefix="billing-bench-queries-"))
    pg = EmbeddedPostgres(root / "pg", free_port())
    pg.start()
    try:
        created = pg.create_database("bench")
        upgrade_to_head(created)
        yield created
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="ledger_queries_bench", description=__doc__)
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--full", action="store_true", help="50,000 accounts, 1,000,000 events")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--filled", action="store_true",
                        help="with --database-url: already filled at this size, skip the fill")
    args = parser.parse_args(argv)
    if args.full:
        args.accounts, args.events = 50_000, 1_000_000
    if args.filled and not args.database_url:
        parser.error("--filled needs --database-url")
    with _database(args.database_url or None) as url:
        if args.filled:
            upgrade_to_head(url)
            print(f"reusing the filled database ({args.accounts} accounts)")
        else:
            print(f"filling {args.accounts} accounts, {args.events} billing events ...")
            started = time.perf_counter()
            timings = fill(url, args.accounts, args.events)
            print(f"filled in {time.perf_counter() - started:.1f}s: "
                  + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
        with psycopg.connect(libpq_url(url)) as conn:
            for table in ("billing_events", "query_accounts", "query_invoice_rows",
                          "query_mrr_steps"):
                count = conn.execute(f"SELECT count(*) FROM ledger.{table}").fetchone()  # noqa: S608
                print(f"  ledger.{table}: {count[0] if count else 0} rows")
        results = asyncio.run(run_queries(url, args.runs, args.accounts))
    baseline = statistics.median(results[0][1])
    print(f"\n{'query':32} {'p50 ms':>8} {'p95 ms':>8} {'p50/baseline':>13}")
    worst = 0.0
    for name, samples in results:
        p50, p95 = _pct(samples, 0.5), _pct(samples, 0.95)
        if not name.startswith("baseline"):
            worst = max(worst, p95)
        print(f"{name:32} {p50:8.2f} {p95:8.2f} {p50 / baseline:12.1f}x")
    print(f"\nworst p95 of the RPCs: {worst:.1f} ms (target <= 100 ms at full size)")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
