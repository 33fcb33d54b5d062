"""GetDashboard: KPIs beside the prior period, trends, distribution, movements, FX."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from billing.ledger.v1 import queries_pb2 as pb

from services.common.db import make_async_engine
from services.ledger.directory.reads import directory_stats
from services.ledger.queries.inputs import Window
from tests.ledger.queries import world
from tests.ledger.queries.conftest import NOW, Ledger, days_ago, ts

if TYPE_CHECKING:
    from billing.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub as Stub

pytestmark = pytest.mark.integration


async def dashboard(stub: Stub, days: int = 7, **kw: object) -> pb.GetDashboardResponse:
    return await stub.GetDashboard(
        pb.GetDashboardRequest(period_days=days, as_of=ts(NOW), **kw)  # type: ignore[arg-type]
    )


async def test_kpis_against_the_prior_period(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    d = await dashboard(stub)
    k = d.kpis
    assert d.platform_currency == "USD"
    assert d.period.start.ToDatetime().isoformat() == "2025-06-09T00:00:00"
    assert d.period.end.ToDatetime().isoformat() == "2025-06-16T00:00:00"
    assert d.prior_period.start.ToDatetime().isoformat() == "2025-06-02T00:00:00"
    # t_gone (soft-deleted tenant) is in no count
    assert k.total_accounts == 6
    assert (k.new_accounts, k.new_accounts_prior, k.new_accounts_delta) == (3, 1, 2)
    assert k.forward_mrr.amount_minor == world.FORWARD_NOW
    assert k.forward_mrr_prior.amount_minor == world.FORWARD_PRIOR_END
    assert k.forward_mrr_delta.amount_minor == world.FORWARD_NOW - world.FORWARD_PRIOR_END
    assert k.committed_mrr.amount_minor == world.COMMITTED_NOW
    assert k.committed_mrr_prior.amount_minor == 1500
    assert k.net_revenue.amount_minor == world.PERIOD_REVENUE
    assert k.net_revenue_prior.amount_minor == world.PRIOR_REVENUE
    assert k.net_revenue_delta.amount_minor == world.PERIOD_REVENUE - world.PRIOR_REVENUE
    assert k.net_revenue.currency == "USD"
    assert (k.active_users, k.active_users_prior, k.active_sessions) == (1, 1, 1)
    assert list(d.unconverted_currencies) == ["GBP"]


async def test_revenue_trend_ends_at_the_total(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    for days in (7, 30, 90):
        d = await dashboard(stub, days)
        assert len(d.revenue_trend) == days
        assert d.revenue_trend[-1].cumulative.amount_minor == d.kpis.net_revenue.amount_minor
        running = 0
        for point in d.revenue_trend:
            running += point.net_revenue.amount_minor
            assert point.cumulative.amount_minor == running
    d = await dashboard(stub)
    daily = {p.date: p.net_revenue.amount_minor for p in d.revenue_trend}
    assert daily == {
        "2025-06-09": 0,
        "2025-06-10": 1000,
        "2025-06-11": 300,
        "2025-06-12": 1080,
        "2025-06-13": -1080 + 6700,  # the credit note without a refund voids in_b1
        "2025-06-14": -500 - 300,  # refund dips on its own day; cn_a2 + its refund count once
        "2025-06-15": 0,
    }


async def test_refund_dips_on_its_day(stub: Stub, ledger: Ledger) -> None:
    ledger.customer("cus_r", name="R", created_at=days_ago(40))
    ledger.invoice("in_r", "cus_r", total=1100, tax=100, created=days_ago(6), paid_at=days_ago(6))
    before = (await dashboard(stub)).revenue_trend
    assert [p.cumulative.amount_minor for p in before][-1] == 1000
    ledger.refund("re_r", "in_r", amount=550, at=days_ago(3))
    after = (await dashboard(stub)).revenue_trend
    by_day = {p.date: p for p in after}
    assert by_day["2025-06-12"].net_revenue.amount_minor == -500  # 550 gross -> 500 ex tax
    assert by_day["2025-06-11"].cumulative.amount_minor == 1000
    assert by_day["2025-06-12"].cumulative.amount_minor == 500
    assert after[-1].cumulative.amount_minor == 500


async def test_credit_note_without_refund_voids_revenue(stub: Stub, ledger: Ledger) -> None:
    ledger.customer("cus_v", name="V", created_at=days_ago(40))
    ledger.invoice("in_v", "cus_v", total=4000, created=days_ago(5), paid_at=days_ago(5))
    assert (await dashboard(stub)).kpis.net_revenue.amount_minor == 4000
    ledger.credit_note("cn_v", "in_v", total=4000, at=days_ago(1))
    d = await dashboard(stub)
    assert d.kpis.net_revenue.amount_minor == 0
    assert {p.date: p.net_revenue.amount_minor for p in d.revenue_trend}["2025-06-14"] == -4000
    # a void credit note reverses nothing
    ledger.execute("UPDATE ledger.credit_notes SET status = 'void' WHERE credit_note_id = 'cn_v'")
    assert (await dashboard(stub)).kpis.net_revenue.amount_minor == 4000


async def test_jpy_converts_through_major_units(stub: Stub, ledger: Ledger) -> None:
    ledger.customer("cus_j", name="J", created_at=days_ago(40), currency="JPY")
    ledger.invoice(
        "in_j", "cus_j", total=12345, created=days_ago(1), paid_at=days_ago(1), currency="JPY"
    )
    d = await dashboard(stub)
    # 12345 yen x 0.0067 = 82.7115 USD -> 8271.15 cents -> 8271 (half even)
    assert d.kpis.net_revenue.amount_minor == 8271
    assert list(d.unconverted_currencies) == []


async def test_mrr_trend_and_movements(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    d = await dashboard(stub)
    trend = {p.date: (p.committed_mrr.amount_minor, p.forward_mrr.amount_minor)
             for p in d.mrr_trend}
    assert trend["2025-06-09"] == (1000 + 500, 1500)
    assert trend["2025-06-11"] == (1000, 1000)  # sub_e churned on 06-11
    assert trend["2025-06-12"] == (1000 + 2160, 1000 + 2160)
    assert trend["2025-06-13"] == (1500 + 2160 + 6700, 1500 + 2160 + 6700)
    assert trend["2025-06-14"] == (world.COMMITTED_NOW, world.FORWARD_NOW)
    assert trend["2025-06-15"] == (world.COMMITTED_NOW, world.FORWARD_NOW)
    assert d.mrr_trend[-1].committed_mrr.amount_minor == d.kpis.committed_mrr.amount_minor
    moves = {m.category: (m.count, m.amount.amount_minor) for m in d.mrr_movements}
    assert moves == {
        "new": (2, 2160 + 6700),
        "expansion": (1, 500),
        "contraction": (0, 0),
        "churn": (1, -500),
        "reactivation": (0, 0),
    }
    prior = {m.category: (m.count, m.amount.amount_minor) for m in d.mrr_movements_prior}
    assert prior["new"] == (1, 500)


async def test_trend_only_is_the_full_answers_trend(stub: Stub, ledger: Ledger) -> None:
    """The back-office's prior-period overlay asks for the trend alone: the same points and
    periods as the full dashboard (JPY included: unconverted currencies too), none of the rest."""
    world.build(ledger)
    ledger.customer("cus_j", name="J", created_at=days_ago(40), currency="JPY")
    for days in (7, 30):
        full = await dashboard(stub, days)
        trend = await dashboard(stub, days, trend_only=True)
        assert len(trend.mrr_trend) == days
        assert list(trend.mrr_trend) == list(full.mrr_trend)
        assert (trend.period, trend.prior_period, trend.as_of, trend.period_days) == (
            full.period, full.prior_period, full.as_of, full.period_days
        )
        assert trend.platform_currency == full.platform_currency
        assert set(trend.unconverted_currencies) <= set(full.unconverted_currencies)
        assert not trend.HasField("kpis")
        assert not (trend.revenue_trend or trend.mrr_movements or trend.recent_signups)


async def test_reactivation_and_contraction(stub: Stub, ledger: Ledger) -> None:
    ev = ledger.event
    ev("SubscriptionCreated", days_ago(30), subscription_id="sub_r", committed=800)
    ev("SubscriptionExpired", days_ago(20), subscription_id="sub_r", committed=0)
    ev("SubscriptionReactivated", days_ago(3), subscription_id="sub_r", committed=800)
    ev("SubscriptionDowngraded", days_ago(2), subscription_id="sub_r", committed=600)
    # back from 0 through a row of another type: it had MRR before, so reactivation too
    ev("SubscriptionCreated", days_ago(40), subscription_id="sub_q", committed=400)
    ev("SubscriptionSuspended", days_ago(30), subscription_id="sub_q", committed=0)
    ev("Unclassified", days_ago(1), subscription_id="sub_q", committed=450)
    d = await dashboard(stub)
    moves = {m.category: (m.count, m.amount.amount_minor) for m in d.mrr_movements}
    assert moves["reactivation"] == (2, 800 + 450)
    assert moves["contraction"] == (1, -200)
    assert moves["new"] == (0, 0)


async def test_distribution_growth_signups_and_events(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    d = await dashboard(stub, recent_limit=3)
    shares = {s.plan: (s.accounts, s.committed_mrr.amount_minor) for s in d.plan_distribution}
    assert shares == {
        "Pro": (2, 1500 + 2160),
        "Business": (1, 6700),
        "Starter": (1, 0),
        "": (2, 0),
    }
    growth = {g.date: (g.new_accounts, g.total_accounts) for g in d.account_growth}
    assert growth["2025-06-09"] == (0, 3)
    assert growth["2025-06-12"] == (1, 4)
    assert growth["2025-06-15"] == (0, 6)
    assert [a.account_id for a in d.recent_signups] == ["cus_d", "cus_c", "cus_b"]
    assert len(d.recent_events) == 3
    assert "NoOp" not in {e.event_type for e in d.recent_events}
    assert d.recent_events[0].stripe_event_id == "evt_renewal_a"
    assert d.recent_events[0].committed_mrr.amount_minor == 1500
    assert d.recent_events[0].committed_mrr_carried
    times = [e.occurred_at.ToDatetime() for e in d.recent_events]
    assert times == sorted(times, reverse=True)


async def test_dashboard_validation(stub: Stub) -> None:
    for request in (
        pb.GetDashboardRequest(period_days=14),
        pb.GetDashboardRequest(period_days=-7),
        pb.GetDashboardRequest(period_days=7, recent_limit=1000),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetDashboard(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    d = await stub.GetDashboard(pb.GetDashboardRequest())  # defaults: 30 days, now
    assert d.period_days == 30 and len(d.mrr_trend) == 30
    assert abs(d.as_of.ToDatetime() - NOW.replace(tzinfo=None)) > timedelta(0)


async def test_directory_kpis_match_directory_stats(
    stub: Stub, ledger: Ledger, database_url: str
) -> None:
    """The dashboard's active users / sessions use DirectoryStats' definitions exactly."""
    rng = random.Random(3)
    for t in range(6):
        ledger.tenant(f"t{t}", f"T{t}", days_ago(100), deleted_at=days_ago(1) if t < 2 else None)
    users = [f"u{i}" for i in range(40)]
    for i, user in enumerate(users):
        ledger.execute(
            "INSERT INTO ledger.users (user_id, email, created_at) VALUES (%s, %s, %s)",
            (user, f"{user}@example.com", days_ago(200)),
        )
        for t in rng.sample(range(6), k=i % 3):  # some users have no membership at all
            ledger.execute(
                "INSERT INTO ledger.memberships (user_id, tenant_id, role, status)"
                " VALUES (%s, %s, 'member', 'active')",
                (user, f"t{t}"),
            )
    for _ in range(300):
        at = days_ago(rng.uniform(0, 60))
        tenant = rng.choice([None, *[f"t{t}" for t in range(6)]])
        outcome = rng.choice(["success", "success", "failure"])
        ledger.execute(
            "INSERT INTO ledger.logins (user_id, tenant_id, at, method, outcome)"
            " VALUES (%s, %s, %s, 'password', %s)",
            (rng.choice(users), tenant, at, outcome),
        )
    for i in range(60):
        start = days_ago(rng.uniform(1, 5))
        seen = min(start + timedelta(hours=rng.uniform(0, 120)), NOW + timedelta(hours=2))
        revoked = NOW - timedelta(hours=rng.uniform(0, 30)) if i % 4 == 0 else None
        ledger.execute(
            "INSERT INTO ledger.sessions (session_id, user_id, started_at, last_seen_at,"
            " revoked_at) VALUES (%s, %s, %s, %s, %s)",
            (f"s{i}", rng.choice(users), start, seen, revoked),
        )
    engine = make_async_engine(database_url)
    try:
        for days in (7, 30):
            w = Window(NOW, days)
            d = await dashboard(stub, days)
            async with engine.connect() as conn:
                now = await directory_stats(conn, w.start, w.end, NOW)
                prior = await directory_stats(conn, w.prior_start, w.start, NOW)
            assert d.kpis.active_users == now.active_users > 0
            assert d.kpis.active_users_prior == prior.active_users > 0
            assert d.kpis.active_sessions == now.active_sessions > 0
    finally:
        await engine.dispose()
