"""Migration 0016's read paths give the answers their definitions give.

The event list's total over a period now counts the whole hours of its edge days from
``query_event_hourly``: equal to ``count(*)`` of the rows for periods on and off the hour,
within one hour, one day or many, open at either end, every lens, after events written in
random order (single rows and multi-row statements) and after ``query_support_rebuild()``.

The dashboard's active sessions leave out the users of ``query_unlisted_users`` (kept by the
membership and tenant triggers): equal to the old statement (the unlisted users computed from
every membership) after tenants are deleted and restored and memberships come and go, and
after a rebuild.

The account list now reads a page one of four ways (no row when the facets count none; the
matches read and sorted when they are few; one walk per (plan, status) pair under a plan or
status sort; the sort's index otherwise). Whatever the way, the pages, read one after the
other with their tokens, must list exactly the rows of the old one-statement definition, kept
here as SQL: every live match ordered by the sort key, NULLS LAST, then the account id. Checked
for every sort key both ways, filters that leave pairs empty, ties and page sizes 2 to 7,
after writes in random order, after writes that move accounts between pairs, and after
``query_support_rebuild()``.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import and_, func, select, text, true

from services.common.db import make_async_engine
from services.ledger.queries import accounts, dashboard, events
from services.ledger.queries.daily_counts import in_period
from services.ledger.queries.inputs import (
    AccountSort,
    TimeRange,
    account_list_query,
    account_token,
)
from services.ledger.queries.lenses import Lens, lens_condition
from services.ledger.queries.tables import billing_events as be
from tests.ledger.queries.conftest import FX, NOW, Ledger, days_ago
from tests.ledger.queries.test_query_scaling import _directory, _rebuild_keeps

pytestmark = pytest.mark.integration

PLANS = ("Pro", "Team", "Max", "Basic")
STATUSES = ("active", "past_due", "trialing", "canceled")
CURRENCIES = ("USD", "EUR", "JPY", "GBP")  # GBP: no rate


def _mrr_sql() -> str:
    whens = " ".join(
        f"WHEN '{c}' THEN {FX.factor(c)}" for c in CURRENCIES if FX.factor(c) is not None
    )
    return f"committed_mrr * CASE currency {whens} END"


# The old definition: one statement, the whole order (migration 0014's reader).
ORACLE_KEYS = {
    AccountSort.NAME: "lower(name)",
    AccountSort.PLAN: "plan",
    AccountSort.STATUS: "status",
    AccountSort.RENEWAL: "renewal_at",
    AccountSort.CREATED: "created_at",
    AccountSort.MRR: _mrr_sql(),
}
ORACLE_SQL = """
SELECT account_id FROM ledger.query_accounts
WHERE deleted_at IS NULL
  AND (CAST(:plans AS text[]) IS NULL OR plan = ANY(CAST(:plans AS text[])))
  AND (CAST(:statuses AS text[]) IS NULL OR status = ANY(CAST(:statuses AS text[])))
  AND (CAST(:drift AS boolean) IS NULL OR drift_detected = CAST(:drift AS boolean))
ORDER BY {key} {direction} NULLS LAST, account_id {direction}
"""

FILTERS: tuple[dict[str, Any], ...] = (
    {"plans": ["Pro", "Max"], "statuses": ["active", "past_due"]},  # no past_due Pro / Max
    {"plans": ["Team"]},
    {"statuses": ["past_due", "trialing"]},
    {"statuses": ["canceled"], "plans": ["Max"]},  # no such account: empty
    {"statuses": ["active"], "drift_detected": True},
    {"plans": ["Pro", "Team", "Max", "Basic", ""]},
)


def _world(ledger: Ledger, rng: random.Random) -> None:
    """60 accounts written in random order: plans and statuses correlated (no past_due
    account on Pro or Max, no canceled Max), name / MRR / renewal ties, accounts without a
    subscription (plan ''), a currency without a rate and none, deleted and drifting ones."""
    order = list(range(60))
    rng.shuffle(order)
    for i in order:
        customer = f"cus_f{i:02d}"
        ledger.customer(customer, name=f"Facet {i % 9}", created_at=days_ago(1 + i % 11),
                        currency=CURRENCIES[i % 4])
        if i % 10 == 9:
            continue  # no subscription: plan and status ''
        status = STATUSES[i % 4]
        plan = PLANS[i % 3] if status != "past_due" else "Team"
        if plan == "Max" and status == "canceled":
            plan = "Basic"
        ledger.subscription(f"sub_f{i:02d}", customer, plan=plan, status=status,
                            mrr=(1000, 1080, 2500)[i % 3], currency=CURRENCIES[i % 4],
                            period_end=days_ago(-(i % 5)))
    ledger.execute("UPDATE ledger.accounts SET currency = NULL"
                   " WHERE stripe_customer_id IN ('cus_f09', 'cus_f19')")
    ledger.execute("UPDATE ledger.accounts SET deleted_at = %s"
                   " WHERE stripe_customer_id IN ('cus_f04', 'cus_f33')", (days_ago(1),))
    for customer in ("cus_f00", "cus_f08", "cus_f13"):
        ledger.event("Unclassified", days_ago(2), customer_id=customer)  # drift


def _query(sort: AccountSort, descending: bool, size: int, token: str, kw: dict[str, Any]) -> Any:
    return account_list_query(
        search="", plans=kw.get("plans", []), statuses=kw.get("statuses", []),
        drift_detected=kw.get("drift_detected"), unsynced=None, sort_by=sort.value,
        descending=descending, requested_page_size=size, page_token=token,
    )


async def _paged(conn: Any, sort: AccountSort, descending: bool, size: int,
                 kw: dict[str, Any], facet_walks: bool) -> list[str]:
    """Every page in turn, through list_accounts (or the pair merge itself)."""
    out: list[str] = []
    token = ""
    while True:
        q = _query(sort, descending, size, token, kw)
        if facet_walks:
            rows = await accounts._facet_page(conn, q, FX, accounts._filters(q))
        else:
            rows, _total, _capped = await accounts.list_accounts(conn, q, FX)
        served = rows[:size]
        out.extend(r.account_id for r in served)
        assert len(out) <= 60, "the pages repeat rows"  # the world has 60 accounts
        if len(rows) <= size:
            return out
        token = account_token(q, served[-1].sort_value, served[-1].account_id)


async def _oracle(conn: Any, sort: AccountSort, descending: bool, kw: dict[str, Any]) -> list[str]:
    statement = ORACLE_SQL.format(key=ORACLE_KEYS[sort],
                                  direction="DESC" if descending else "ASC")
    rows = await conn.execute(text(statement), {
        "plans": kw.get("plans"), "statuses": kw.get("statuses"),
        "drift": kw.get("drift_detected"),
    })
    return [str(r.account_id) for r in rows]


async def _compare_all(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            seen_empty = seen_rows = 0
            for kw in FILTERS:
                for sort in AccountSort:
                    for descending in (False, True):
                        expected = await _oracle(conn, sort, descending, kw)
                        seen_empty += not expected
                        seen_rows += len(expected)
                        # the reader's own choice, then each way forced: sets always read
                        # (advantage huge), never read (advantage 0); and the pair merge itself
                        for size, advantage in ((2, accounts._SET_READ_ADVANTAGE), (5, 10**9),
                                                (3, 0), (7, 0)):
                            with monkeypatch.context() as m:
                                m.setattr(accounts, "_SET_READ_ADVANTAGE", advantage)
                                got = await _paged(conn, sort, descending, size, kw, False)
                            assert got == expected, (kw, sort, descending, size, advantage)
                        if sort in (AccountSort.PLAN, AccountSort.STATUS):
                            got = await _paged(conn, sort, descending, 3, kw, True)
                            assert got == expected, (kw, sort, descending, "pairs")
            assert seen_empty and seen_rows > 200  # the filters do select, and empty pages too
    finally:
        await engine.dispose()


async def test_account_pages_equal_the_one_statement_order(
    ledger: Ledger, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _world(ledger, random.Random(16))
    await _compare_all(database_url, monkeypatch)
    # accounts move between pairs (plan and status changes, a deletion, a restore)
    ledger.execute("UPDATE ledger.subscriptions SET status = 'past_due', plan = 'Team'"
                   " WHERE subscription_id IN ('sub_f01', 'sub_f02')")
    ledger.execute("UPDATE ledger.subscriptions SET plan = 'Max', status = 'active'"
                   " WHERE subscription_id = 'sub_f07'")
    ledger.execute("UPDATE ledger.accounts SET deleted_at = NULL"
                   " WHERE stripe_customer_id = 'cus_f04'")
    ledger.execute("UPDATE ledger.accounts SET deleted_at = %s"
                   " WHERE stripe_customer_id = 'cus_f05'", (days_ago(1),))
    await _compare_all(database_url, monkeypatch)
    _rebuild_keeps(ledger)
    await _compare_all(database_url, monkeypatch)


async def test_an_empty_filter_reads_no_page(
    ledger: Ledger, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The facets count none: the page query is not even run (it would cross every row of
    the sort's index testing the filter)."""
    _world(ledger, random.Random(3))

    async def no_page(*_args: Any, **_kw: Any) -> list[Any]:
        raise AssertionError("page read although the facets count no match")

    monkeypatch.setattr(accounts, "account_page", no_page)
    monkeypatch.setattr(accounts, "_facet_page", no_page)
    monkeypatch.setattr(accounts, "_mrr_page", no_page)
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            for sort in AccountSort:
                q = _query(sort, True, 5, "", {"statuses": ["canceled"], "plans": ["Max"]})
                assert await accounts.list_accounts(conn, q, FX) == ([], 0, False)
    finally:
        await engine.dispose()


EVENT_TYPES = ("SubscriptionRenewed", "SubscriptionUpgraded", "NoOp", "PaymentFailed",
               "SubscriptionPastDue", "Unclassified", "SubscriptionCreated")


def _events(ledger: Ledger, rng: random.Random, n: int) -> None:
    """``n`` events at random minutes of the last five days, in random order: half one row
    per statement, half in multi-row statements spanning hours and days; some with a delta."""
    rows = [
        (f"evt_h{rng.getrandbits(40):x}", rng.choice(EVENT_TYPES),
         NOW - timedelta(minutes=rng.randrange(5 * 24 * 60), seconds=rng.randrange(60)),
         rng.choice([None, 0, 500, -300]))
        for _ in range(n)
    ]
    for event_id, kind, at, delta in rows[: n // 2]:
        ledger.event(kind, at, delta=delta, event_id=event_id)
    rest = rows[n // 2:]
    for i in range(0, len(rest), 9):
        batch = rest[i:i + 9]
        ledger.execute(
            "INSERT INTO ledger.billing_events (stripe_event_id, stripe_event_type, event_type,"
            " amount_delta, currency, occurred_at)"
            " SELECT e, 'customer.subscription.updated', t, d, 'USD', a"
            " FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::bigint[])"
            " AS x(e, t, a, d)",
            ([r[0] for r in batch], [r[1] for r in batch], [r[2] for r in batch],
             [r[3] for r in batch]),
        )


def _periods() -> list[TimeRange]:
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    return [
        TimeRange(None, None),
        TimeRange(NOW - timedelta(days=3), NOW),  # on the hour at both ends
        TimeRange(NOW - timedelta(days=3, minutes=17), NOW - timedelta(minutes=17)),
        TimeRange(days_ago(2, hours=5.5), None),
        TimeRange(None, days_ago(1, hours=7.25)),
        TimeRange(hour - timedelta(hours=30, minutes=10), hour - timedelta(hours=29, minutes=5)),
        TimeRange(hour - timedelta(hours=5, minutes=40), hour - timedelta(hours=5, minutes=20)),
        TimeRange(hour - timedelta(hours=50), hour - timedelta(hours=47)),  # whole hours, 1 day
        TimeRange(hour - timedelta(hours=70, seconds=1), hour - timedelta(hours=2, seconds=-1)),
    ]


async def _compare_event_totals(database_url: str) -> None:
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            for period in _periods():
                for lens in Lens:
                    for noop in (False, True):
                        fast = await events.count_events(conn, period, lens, noop)
                        old = (await conn.execute(  # the old definition: every row counted
                            select(func.count()).select_from(be).where(and_(
                                true(),
                                lens_condition(lens, be.c.event_type,
                                               func.coalesce(be.c.amount_delta, 0) != 0, noop),
                                *in_period(be.c.occurred_at, period),
                            ))
                        )).scalar_one()
                        assert fast == old, (period, lens, noop)
    finally:
        await engine.dispose()


def _event_counts(ledger: Ledger) -> list[Any]:
    return [ledger.execute(f"SELECT x::text FROM ledger.{t} x ORDER BY 1")  # noqa: S608
            for t in ("query_event_daily", "query_event_hourly")]


async def test_event_totals_from_hours_equal_the_rows(ledger: Ledger, database_url: str) -> None:
    _events(ledger, random.Random(7), 240)
    assert len(ledger.execute("SELECT 1 FROM ledger.query_event_hourly")) > 60
    await _compare_event_totals(database_url)
    live = _event_counts(ledger)
    ledger.execute("SELECT ledger.query_support_rebuild()")
    assert _event_counts(ledger) == live
    _events(ledger, random.Random(8), 60)  # written after a rebuild
    await _compare_event_totals(database_url)


# The old statement: the unlisted users computed from every membership (migration 0014).
OLD_ACTIVE_SESSIONS_SQL = """
SELECT count(*) FROM ledger.sessions s
WHERE s.started_at <= :as_of AND (s.revoked_at IS NULL OR s.revoked_at > :as_of)
  AND s.last_seen_at > :as_of - interval '24 hours' AND s.last_seen_at <= :as_of
  AND s.user_id NOT IN (
      SELECT dm.user_id FROM ledger.memberships dm
      JOIN ledger.tenants dt ON dt.tenant_id = dm.tenant_id
      WHERE dt.deleted_at IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM ledger.memberships lm
                        JOIN ledger.tenants lt ON lt.tenant_id = lm.tenant_id
                        WHERE lm.user_id = dm.user_id AND lt.deleted_at IS NULL))
"""


async def _compare_sessions(database_url: str) -> int:
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            counts = []
            for back in (0, 5, 20, 30):
                as_of = NOW - timedelta(hours=back)
                fast = await dashboard.active_sessions(conn, as_of)
                old = (await conn.execute(text(OLD_ACTIVE_SESSIONS_SQL), {"as_of": as_of}))
                assert fast == old.scalar_one(), back
                counts.append(fast)
            return sum(counts)
    finally:
        await engine.dispose()


async def test_active_sessions_leave_out_the_kept_unlisted_users(
    ledger: Ledger, database_url: str
) -> None:
    rng = random.Random(23)
    users = _directory(ledger, rng)  # tenants t0, t1 deleted; users in 0-2 tenants each
    for i in range(90):
        seen = NOW - timedelta(hours=rng.uniform(0, 48))
        revoked = seen + timedelta(hours=rng.uniform(0, 10)) if i % 5 == 0 else None
        ledger.execute(
            "INSERT INTO ledger.sessions (session_id, user_id, started_at, last_seen_at,"
            " revoked_at) VALUES (%s, %s, %s, %s, %s)",
            (f"s{i}", rng.choice(users), seen - timedelta(hours=2), seen, revoked),
        )
    unlisted = ledger.execute("SELECT count(*) FROM ledger.query_unlisted_users")[0][0]
    assert unlisted > 0
    before = await _compare_sessions(database_url)
    # a deleted tenant restored, another deleted; members join a deleted tenant and leave
    ledger.execute("UPDATE ledger.tenants SET deleted_at = NULL WHERE tenant_id = 't0'")
    ledger.execute("UPDATE ledger.tenants SET deleted_at = %s WHERE tenant_id = 't4'",
                   (days_ago(2),))
    await _compare_sessions(database_url)
    ledger.execute(
        "INSERT INTO ledger.memberships (user_id, tenant_id, role, status)"
        " SELECT user_id, 't1', 'member', 'active' FROM ledger.users u WHERE NOT EXISTS"
        " (SELECT 1 FROM ledger.memberships m WHERE m.user_id = u.user_id)"
    )
    ledger.execute("UPDATE ledger.memberships SET tenant_id = 't5'"
                   " WHERE user_id = %s AND tenant_id = 't1'", (users[0],))
    ledger.execute("DELETE FROM ledger.memberships WHERE user_id = %s", (users[3],))
    after = await _compare_sessions(database_url)
    assert before != after  # the changes did move the count
    live = ledger.execute("SELECT user_id FROM ledger.query_unlisted_users ORDER BY 1")
    ledger.execute("SELECT ledger.query_support_rebuild()")
    assert ledger.execute("SELECT user_id FROM ledger.query_unlisted_users ORDER BY 1") == live
    await _compare_sessions(database_url)
