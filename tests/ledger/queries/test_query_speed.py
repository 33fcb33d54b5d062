"""Migration 0012's read-side support gives the answers the scans gave.

* ``query_mrr_moves_daily`` equals the same-currency steps of ``query_mrr_steps`` grouped by
  shape, after out-of-order writes (which move it by new - old) and after a rebuild, and the
  dashboard's movements from it equal the per-step computation, to the cent, for every
  period, including steps whose currency changed (classified at query time).
* ``query_account_mix`` equals the live accounts of ``query_accounts`` grouped by creation day,
  plan and currency after accounts are created, change plan, lose their tenant and come back
  (and after a rebuild); the dashboard's counts, signups and distribution read from it equal
  the same figures computed over the accounts.
* The account search's ILIKE is served by the trigram indexes (with the same rows), and a
  search's pages (read from the materialised matches) come in the full list's order for every
  sort, across page tokens.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from billing.ledger.v1 import queries_pb2 as pb
from sqlalchemy import text

from services.common.db import make_async_engine
from services.ledger.queries import dashboard
from services.ledger.queries.inputs import Window
from tests.ledger.queries import world
from tests.ledger.queries.conftest import FX, NOW, Ledger, days_ago
from tests.ledger.queries.test_accounts import list_all

pytestmark = pytest.mark.integration

RECOMPUTED_SHAPES = """
SELECT day, currency, sign(prev_committed)::smallint, sign(committed)::smallint,
       committed > prev_committed, had_mrr_before, event_type = 'SubscriptionReactivated',
       count(*), sum(committed - prev_committed)
FROM ledger.query_mrr_steps
WHERE currency IS NOT NULL AND (prev_currency IS NULL OR prev_currency = currency)
  AND committed <> prev_committed
GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
"""
LIVE_SHAPES = "SELECT * FROM ledger.query_mrr_moves_daily ORDER BY 1, 2, 3, 4, 5, 6, 7"
TYPES = (
    "SubscriptionCreated",
    "SubscriptionUpgraded",
    "SubscriptionDowngraded",
    "SubscriptionCancelled",
    "SubscriptionReactivated",
    "SubscriptionExpired",
    "Unclassified",
)


def _random_history(ledger: Ledger, seed: int) -> None:
    """Subscriptions with MRR going up, down, to 0 and back, a few changing currency (one to
    GBP, which has no rate), written in random order so later rows rewrite earlier steps."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for s in range(14):
        currency = ("USD", "EUR", "JPY")[s % 3]
        for j in range(rng.randint(5 if s % 5 == 0 else 2, 9)):
            if s % 5 == 0 and j == 3:
                currency = "GBP" if s == 10 else "USD" if currency != "USD" else "EUR"
            committed = rng.choice((0, 0, 500, 800, 1200, 3000)) if j else rng.choice((0, 900))
            rows.append(
                {
                    "event_type": rng.choice(TYPES) if j else "SubscriptionCreated",
                    "at": days_ago(190 - 20 * j - rng.uniform(0, 15)),  # in time, j's order
                    "subscription_id": f"sub_{s}",
                    "committed": committed,
                    "forward": committed if rng.random() < 0.8 else 0,
                    "currency": currency,
                }
            )
    rng.shuffle(rows)
    for row in rows:
        ledger.event(row.pop("event_type"), row.pop("at"), **row)


def _totals(pair: tuple[dashboard.MovementTotals, ...]) -> list[Any]:
    return [
        (t.counts, {c: t.amount(c) for c in t.counts}, sorted(t.all_unconverted()))
        for t in pair
    ]


@pytest.mark.parametrize("seed", [1, 2])
async def test_daily_shapes_equal_the_steps(ledger: Ledger, database_url: str, seed: int) -> None:
    _random_history(ledger, seed)
    live = ledger.execute(LIVE_SHAPES)
    assert live == ledger.execute(RECOMPUTED_SHAPES)
    assert {r[3] for r in live} >= {0, 1} and any(r[7] > 1 for r in live)  # varied shapes
    changed = ledger.execute(
        "SELECT count(*) FROM ledger.query_mrr_steps"
        " WHERE prev_currency IS NOT NULL AND currency IS DISTINCT FROM prev_currency"
    )
    assert changed[0][0] > 0  # the query-time path is exercised too
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            for days in (7, 30, 90):
                for back in (0, 17, 60):
                    w = Window(NOW - timedelta(days=back), days)
                    from_shapes = await dashboard.mrr_movements(conn, w, FX)
                    from_steps = await dashboard.mrr_movements_from_steps(conn, w, FX)
                    assert _totals(from_shapes) == _totals(from_steps), (days, back)
    finally:
        await engine.dispose()
    ledger.execute("SELECT ledger.query_support_rebuild()")
    assert ledger.execute(LIVE_SHAPES) == live


async def test_dashboard_movements_unchanged_on_the_world(stub: Any, ledger: Ledger) -> None:
    world.build(ledger)
    d = await stub.GetDashboard(pb.GetDashboardRequest(period_days=30))
    assert len(d.mrr_movements) == 5
    assert ledger.execute(LIVE_SHAPES) == ledger.execute(RECOMPUTED_SHAPES)


RECOMPUTED_MIX = """
SELECT COALESCE(ledger.query_day(created_at)::text, '-infinity'), plan, COALESCE(currency, ''),
       count(*), sum(committed_mrr)
FROM ledger.query_accounts WHERE deleted_at IS NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
LIVE_MIX = (
    "SELECT created_day::text, plan, currency, n, committed_mrr FROM ledger.query_account_mix"
    " ORDER BY 1, 2, 3"
)
SCANNED_COUNTS = """
SELECT count(*) FILTER (WHERE created_at < %(end)s OR created_at IS NULL),
       count(*) FILTER (WHERE created_at < %(start)s OR created_at IS NULL),
       count(*) FILTER (WHERE created_at >= %(start)s AND created_at < %(end)s),
       count(*) FILTER (WHERE created_at >= %(prior)s AND created_at < %(start)s)
FROM ledger.query_accounts WHERE deleted_at IS NULL
"""
SCANNED_PLANS = """
SELECT plan, currency, count(*), sum(committed_mrr) FROM ledger.query_accounts
WHERE deleted_at IS NULL AND (created_at < %(end)s OR created_at IS NULL)
GROUP BY 1, 2 ORDER BY 1, 2 NULLS FIRST
"""


async def test_account_mix_equals_the_accounts(ledger: Ledger, database_url: str) -> None:
    world.build(ledger)
    rng = random.Random(7)
    for i in range(40):
        created = days_ago(rng.uniform(0, 120))
        customer = f"cus_m{i}"
        ledger.customer(customer, name=f"Mix {i}", created_at=created,
                        currency=rng.choice(("USD", "EUR", "JPY")))
        if i % 3:
            ledger.subscription(f"sub_m{i}", customer, plan=rng.choice(("Pro", "Team")),
                                mrr=rng.choice((0, 900, 4000)))
    ledger.execute(  # a plan change, a deleted customer, a tenant without any customer
        "UPDATE ledger.subscriptions SET plan = 'Enterprise', committed_mrr = 9000"
        " WHERE subscription_id = 'sub_m1'"
    )
    ledger.execute(
        "UPDATE ledger.accounts SET deleted_at = %s WHERE stripe_customer_id = 'cus_m5'",
        (days_ago(1),),
    )
    ledger.tenant("t_nocust", "No customer", days_ago(4))
    ledger.customer("cus_nodate", name="No date", created_at=None)  # type: ignore[arg-type]
    live = ledger.execute(LIVE_MIX)
    assert live == ledger.execute(RECOMPUTED_MIX)
    assert any(r[0] == "-infinity" for r in live)  # an unknown creation day is a row too
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            for days, back in ((7, 0), (30, 0), (90, 0), (30, 45)):
                w = Window(NOW - timedelta(days=back), days)
                bounds = {"start": w.start, "end": w.end, "prior": w.prior_start}
                c, plans = await dashboard.account_mix(conn, w)
                scanned = ledger.execute(SCANNED_COUNTS, bounds)  # type: ignore[arg-type]
                assert (c.total, c.before_period, c.new, c.new_prior) == scanned[0]
                assert {(r.plan, r.currency, int(r.accounts), int(r.mrr)) for r in plans} == set(
                    ledger.execute(SCANNED_PLANS, bounds)  # type: ignore[arg-type]
                )
                signups = await dashboard.signups_by_day(conn, w)
                assert sum(signups.values()) == c.new
    finally:
        await engine.dispose()
    ledger.execute("SELECT ledger.query_support_rebuild()")
    assert ledger.execute(LIVE_MIX) == live


async def test_account_search_is_served_by_trigram_indexes(
    ledger: Ledger, database_url: str
) -> None:
    world.build(ledger)
    ledger.execute(  # enough accounts that a scan costs more than the indexes
        "INSERT INTO ledger.tenants (tenant_id, name, created_at)"
        " SELECT 't_' || i, 'Tenant ' || md5(i::text), %s FROM generate_series(1, 5000) i",
        (days_ago(50),),
    )
    ledger.execute("VACUUM ANALYZE ledger.query_accounts")  # the GIN pending list, as autovacuum
    engine = make_async_engine(database_url)
    search = (
        "SELECT account_id FROM ledger.query_accounts WHERE deleted_at IS NULL"
        " AND (name ILIKE :p OR email ILIKE :p OR account_id ILIKE :p) ORDER BY account_id"
    )
    try:
        async with engine.connect() as conn:
            plan = "\n".join(
                (await conn.execute(text("EXPLAIN " + search), {"p": "%gmbh%"})).scalars()
            )
            indexed = (await conn.execute(text(search), {"p": "%gmbh%"})).scalars().all()
            await conn.execute(text("SET enable_bitmapscan = off"))
            await conn.execute(text("SET enable_indexscan = off"))
            scanned = (await conn.execute(text(search), {"p": "%gmbh%"})).scalars().all()
    finally:
        await engine.dispose()
    for column in ("name", "email", "account_id"):
        assert f"query_accounts_{column}_trgm" in plan, plan
    assert indexed == scanned == ["cus_b"]


@pytest.mark.parametrize("sort_by", ["name", "plan", "mrr", "renewal", "status", "created"])
@pytest.mark.parametrize("descending", [False, True])
async def test_search_pages_in_the_lists_order(
    stub: Any, ledger: Ledger, sort_by: str, descending: bool
) -> None:
    world.build(ledger)
    for i in range(5):  # ties on every key, and names the search matches
        ledger.customer(f"cus_t{i}", name=f"Twin Co {i % 2}", created_at=days_ago(7))
        ledger.subscription(f"sub_t{i}", f"cus_t{i}", plan="Pro", mrr=1500 * (i % 2))
    full = [a.account_id for a in await list_all(stub, 100, sort_by=sort_by, descending=descending)]
    searched = [
        a.account_id
        for a in await list_all(stub, 2, search="co", sort_by=sort_by, descending=descending)
    ]
    assert len(searched) >= 7 and len(set(searched)) == len(searched)
    assert searched == [i for i in full if i in set(searched)]  # the list's order, paged
    one_page = await list_all(stub, 100, search="co", sort_by=sort_by, descending=descending)
    assert [a.account_id for a in one_page] == searched
