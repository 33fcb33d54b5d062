"""Migration 0014's maintained counters give the answers their definitions give.

Each fast path is compared with the computation it replaces, after writes in random order,
after the writes that can only be followed by a refresh of other rows (a tenant deleted and
restored, memberships added and removed, subscriptions moved between currencies), and after
``query_support_rebuild()`` (which must leave the live rows unchanged, as VerifyLedger checks):

* active users (``query_login_pairs``) = the per-user reading of ``query_login_days``;
* the account lists' totals (``query_account_facets``) = ``count(*)`` of the matches; a search
  counts up to the cap and says so;
* the MRR sort's per-currency merge = the one query ordered by the platform-MRR expression,
  page by page, with ties, currencies without a rate and accounts without a currency;
* the invoice list's total (``query_invoice_daily`` + edge days) = ``count(*)`` of the rows;
* the KPI MRR (``query_mrr_totals``) = the sum over the subscriptions.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from billing.ledger.v1 import queries_pb2 as pb

from services.common.db import make_async_engine
from services.ledger.queries import accounts, dashboard, invoices
from services.ledger.queries.inputs import (
    InvoiceLens,
    Window,
    account_list_query,
    account_token,
    invoice_list_query,
    time_range,
)
from tests.ledger.queries import world
from tests.ledger.queries.conftest import FX, NOW, Ledger, days_ago
from tests.ledger.queries.test_accounts import list_all

pytestmark = pytest.mark.integration

COUNTERS = (
    "query_login_users",
    "query_login_pairs",
    "query_account_facets",
    "query_invoice_daily",
    "query_mrr_totals",
)


def _counters(ledger: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    return {
        t: ledger.execute(f"SELECT x::text FROM ledger.{t} x ORDER BY 1")  # noqa: S608 - constants
        for t in COUNTERS
    }


def _rebuild_keeps(ledger: Ledger) -> None:
    live = _counters(ledger)
    ledger.execute("SELECT ledger.query_support_rebuild()")
    assert _counters(ledger) == live


def _directory(ledger: Ledger, rng: random.Random) -> list[str]:
    for t in range(6):
        ledger.tenant(f"t{t}", f"T{t}", days_ago(300), deleted_at=days_ago(1) if t < 2 else None)
    users = [f"u{i}" for i in range(30)]
    for i, user in enumerate(users):
        ledger.execute(
            "INSERT INTO ledger.users (user_id, email, created_at) VALUES (%s, %s, %s)",
            (user, f"{user}@example.com", days_ago(300)),
        )
        for t in rng.sample(range(6), k=i % 3):
            ledger.execute(
                "INSERT INTO ledger.memberships (user_id, tenant_id, role, status)"
                " VALUES (%s, %s, 'member', 'active')",
                (user, f"t{t}"),
            )
    for _ in range(8):  # batches in random day order: new days land before, between, after
        rows = [
            (
                rng.choice(users),
                rng.choice([None, *[f"t{t}" for t in range(6)]]),
                days_ago(rng.uniform(0, 200)),
                rng.choice(["success", "success", "failure"]),
            )
            for _ in range(30)
        ]
        ledger.execute(  # one statement per batch, as the directory writes them
            "INSERT INTO ledger.logins (user_id, tenant_id, at, method, outcome)"
            " SELECT u, t, a, 'password', o"
            " FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::text[]) AS x(u, t, a, o)",
            tuple(list(column) for column in zip(*rows, strict=True)),
        )
    return users


async def _compare_active_users(database_url: str) -> None:
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            for days in (1, 7, 30, 90):
                for back in (0, 3, 45, 120):
                    w = Window(NOW - timedelta(days=back), days)
                    fast = await dashboard.active_users(conn, w)
                    assert fast == await dashboard.active_users_by_user(conn, w), (days, back)
    finally:
        await engine.dispose()


async def test_active_users_from_day_pairs_equal_the_per_user_reading(
    ledger: Ledger, database_url: str
) -> None:
    rng = random.Random(11)
    users = _directory(ledger, rng)
    assert ledger.execute("SELECT count(*) FROM ledger.query_login_pairs")[0][0] > 30
    await _compare_active_users(database_url)
    # a tenant restored and another deleted: their logins and members count differently
    ledger.execute("UPDATE ledger.tenants SET deleted_at = NULL WHERE tenant_id = 't0'")
    ledger.execute("UPDATE ledger.tenants SET deleted_at = %s WHERE tenant_id = 't4'",
                   (days_ago(2),))
    await _compare_active_users(database_url)
    # users without membership join a deleted tenant (unlisted), then one leaves again
    ledger.execute(
        "INSERT INTO ledger.memberships (user_id, tenant_id, role, status)"
        " SELECT user_id, 't1', 'member', 'active' FROM ledger.users u WHERE NOT EXISTS"
        " (SELECT 1 FROM ledger.memberships m WHERE m.user_id = u.user_id)"
    )
    ledger.execute("DELETE FROM ledger.memberships WHERE user_id = %s AND tenant_id = 't1'",
                   (users[0],))
    await _compare_active_users(database_url)
    _rebuild_keeps(ledger)


def _accounts(ledger: Ledger) -> None:
    """Accounts in three rated currencies, one without a rate (GBP) and none, MRR ties,
    drift and unsynced flags, a deleted one."""
    world.build(ledger)
    currencies = ("USD", "EUR", "JPY", "GBP", "USD", "EUR")
    for i in range(36):
        customer = f"cus_s{i}"
        ledger.customer(customer, name=f"Scale {i % 7}", created_at=days_ago(i + 1),
                        currency=currencies[i % 6])
        if i % 4:
            ledger.subscription(f"sub_s{i}", customer, plan=("Pro", "Team", "Max")[i % 3],
                                mrr=(0, 1000, 1080, 2500)[i % 4] * (1 + i % 2),
                                currency=currencies[i % 6],
                                status=("active", "past_due", "trialing")[i % 3])
    ledger.execute("UPDATE ledger.accounts SET currency = NULL"
                   " WHERE stripe_customer_id IN ('cus_s0', 'cus_s12')")
    ledger.execute("UPDATE ledger.accounts SET deleted_at = %s"
                   " WHERE stripe_customer_id = 'cus_s5'", (days_ago(1),))
    ledger.event("Unclassified", days_ago(2), customer_id="cus_s7")  # drift: Unclassified
    ledger.event("Unclassified", days_ago(2), customer_id="cus_s9")


def _query(**kw: Any) -> Any:
    base: dict[str, Any] = dict(search="", plans=[], statuses=[], drift_detected=None,
                                unsynced=None, sort_by="name", descending=False,
                                requested_page_size=0, page_token="")
    base.update(kw)
    return account_list_query(**base)


FILTERS: tuple[dict[str, Any], ...] = (
    {},
    {"plans": ["Pro", "Max"]},
    {"statuses": ["active", "past_due"]},
    {"plans": ["Team"], "statuses": ["trialing"]},
    {"drift_detected": True},
    {"drift_detected": False, "unsynced": False},
    {"unsynced": True},
    {"plans": ["nope"]},
)


async def test_list_totals_from_facets_equal_the_rows(
    stub: Any, ledger: Ledger, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _accounts(ledger)
    ledger.execute("UPDATE ledger.subscriptions SET plan = 'Max' WHERE subscription_id = 'sub_s1'")
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            for kw in FILTERS:
                q = _query(**kw)
                assert await accounts.count_accounts(conn, q, []) == (
                    await accounts.count_accounts_by_rows(conn, q), False), kw
            drift = _query(drift_detected=True)
            assert await accounts.count_accounts_by_rows(conn, drift) == 2
            search = _query(search="scale 1")
            assert await accounts.count_accounts(conn, search, accounts._filters(search)) == (
                await accounts.count_accounts_by_rows(conn, search), False)
    finally:
        await engine.dispose()
    _rebuild_keeps(ledger)
    # a search matching more than the cap: a lower bound, said so; the same rows, in order
    everything = await list_all(stub, 5, search="scale")
    monkeypatch.setattr(accounts, "SEARCH_COUNT_CAP", 5)
    page = await stub.ListAccounts(pb.ListAccountsRequest(search="scale"))
    assert (page.page.total_count, page.page.total_count_is_lower_bound) == (5, True)
    assert [a.account_id for a in await list_all(stub, 5, search="scale")] == [
        a.account_id for a in everything
    ]
    few = await stub.ListAccounts(pb.ListAccountsRequest(search="scale 1"))  # exactly the cap
    assert not few.page.total_count_is_lower_bound and few.page.total_count == 5


async def _pages(conn: Any, fast: bool, size: int, **kw: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    token = ""
    while True:
        q = _query(sort_by="mrr", requested_page_size=size, page_token=token, **kw)
        if fast:
            rows = await accounts._mrr_page(conn, q, FX, accounts._filters(q))
        else:
            rows = await accounts.account_page(conn, q, FX, materialise=False)
        served = rows[:size]
        out.extend((r.account_id, r.sort_value) for r in served)
        if len(rows) <= size:
            return out
        token = account_token(q, served[-1].sort_value, served[-1].account_id)


async def test_mrr_sort_merge_equals_the_expression_order(
    stub: Any, ledger: Ledger, database_url: str
) -> None:
    _accounts(ledger)
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            for descending in (True, False):
                for size in (1, 3, 7):
                    for kw in ({}, {"plans": ["Pro", "Team"]}, {"statuses": ["active"]}):
                        merged = await _pages(conn, True, size, descending=descending, **kw)
                        one_query = await _pages(conn, False, size, descending=descending, **kw)
                        assert merged == one_query, (descending, size, kw)
                        assert len(merged) == len({a for a, _ in merged})
            everything = await _pages(conn, True, 100, descending=True)
    finally:
        await engine.dispose()
    values = [v for _, v in everything]
    assert None in values and len(set(values)) < len(values)  # a null tail and ties
    listed = await list_all(stub, 4, sort_by="mrr", descending=True)
    assert [a.account_id for a in listed] == [a for a, _ in everything]


async def test_invoice_totals_from_daily_counts_equal_the_rows(
    ledger: Ledger, database_url: str
) -> None:
    world.build(ledger)
    rng = random.Random(5)
    for i in range(30):
        created = days_ago(rng.uniform(0, 90))
        paid = created + timedelta(hours=rng.uniform(0, 30)) if i % 4 else None
        ledger.invoice(f"in_s{i}", "cus_a", total=1000 + i, tax=100, created=created,
                       paid_at=paid)
        if paid is not None and i % 3 == 0:
            ledger.refund(f"re_s{i}", f"in_s{i}", amount=300, at=paid + timedelta(days=2))
        if paid is not None and i % 5 == 0:
            ledger.credit_note(f"cn_s{i}", f"in_s{i}", total=200, at=paid + timedelta(days=1))
    ledger.execute("UPDATE ledger.payments SET invoice_created = %s WHERE invoice_id = 'in_s3'",
                   (days_ago(100),))  # an invoice moving to another day
    periods = [
        (None, None),
        (days_ago(30), None),
        (None, days_ago(10, hours=5)),
        (days_ago(45, hours=7), days_ago(3, hours=2)),
        (days_ago(5, hours=3), days_ago(5, hours=1)),  # within one day
        (days_ago(6, hours=20), days_ago(5, hours=2)),  # two partial days
    ]
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            for start, end in periods:
                for lens in InvoiceLens:
                    q = invoice_list_query(account_id="", period=time_range(start, end),
                                           lens=lens, oldest_first=False,
                                           requested_page_size=0, page_token="")
                    _, total = await invoices.list_invoices(conn, q, None)
                    assert total == await invoices.count_invoices_by_rows(conn, q, None), (
                        start, end, lens)
    finally:
        await engine.dispose()
    _rebuild_keeps(ledger)


async def test_kpi_mrr_totals_equal_the_subscriptions(
    ledger: Ledger, database_url: str
) -> None:
    _accounts(ledger)
    ledger.execute("UPDATE ledger.subscriptions SET currency = 'EUR', committed_mrr = 777"
                   " WHERE subscription_id = 'sub_s3'")
    ledger.execute("UPDATE ledger.subscriptions SET status = 'canceled'"
                   " WHERE subscription_id = 'sub_s2'")  # moves nothing: not written
    ledger.execute("DELETE FROM ledger.subscriptions WHERE subscription_id = 'sub_s6'")
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            fast = await dashboard.kpi_mrr(conn)
            assert fast == await dashboard.kpi_mrr_from_subscriptions(conn)
            assert set(fast) >= {"USD", "EUR", "JPY", "GBP"}
    finally:
        await engine.dispose()
    _rebuild_keeps(ledger)
