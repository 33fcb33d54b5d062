"""Migration 0020's account and MRR refreshes write only changed rows, the same rows as before.

0020 changed ``ledger.query_refresh_accounts`` from delete-and-reinsert of every account it
is asked about to: compute the rows (0017's statement), compare them with the stored ones,
upsert the ones that differ, delete the ones that are gone, move the mix and facets for
those accounts only. The oracle is 0017's function from 0020's frozen downgrade copy: in a
transaction rolled back it is put back and ``query_support_rebuild()`` refills every query
table; ``query_accounts``, ``query_account_mix`` and ``query_account_facets`` written live
by the new function after single-row writes in random order (the writes of
test_live_refresh, then updates that change, keep or remove accounts' rows) must equal it,
and the new function's own rebuild, and VerifyLedger's query-table check finds 0 mismatches.
A refresh that changes nothing must leave the stored row itself in place (same ``ctid`` and
``xmin``): the old function fails that. The same comparison covers ``query_refresh_mrr``
(0020 too: only the steps that differ are deleted, only new ones inserted): the MRR tables
after MRR events of three subscriptions in random order equal the old function's rebuild.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command

from services.common.config import libpq_url
from services.common.migrate import alembic_config, upgrade_to_head
from tests.ledger.queries.conftest import Ledger, days_ago, put_back_functions
from tests.ledger.queries.test_live_refresh import _verify, _writes

pytestmark = pytest.mark.integration

VERSIONS = Path(__file__).resolve().parents[3] / "migrations" / "versions"
OLD_FUNCTION = (VERSIONS / "0020_downgrade_functions.sql").read_text(encoding="utf-8")
TABLES = (
    "SELECT q::text FROM ledger.query_accounts q ORDER BY q.account_id",
    "SELECT m::text FROM ledger.query_account_mix m ORDER BY m::text",
    "SELECT f::text FROM ledger.query_account_facets f ORDER BY f::text",
    "SELECT s::text FROM ledger.query_mrr_steps s ORDER BY s::text",
    "SELECT d::text FROM ledger.query_mrr_daily d ORDER BY d::text",
    "SELECT m::text FROM ledger.query_mrr_moves_daily m ORDER BY m::text",
)


def _rows(conn: psycopg.Connection[Any]) -> list[list[str]]:
    return [[str(r[0]) for r in conn.execute(q).fetchall()] for q in TABLES]  # type: ignore[arg-type]


def _old_rebuild(url: str, function: str = OLD_FUNCTION) -> list[list[str]]:
    """The tables as an older function rebuilds them (0017's unless ``function`` puts back
    another; rolled back afterwards)."""
    with psycopg.connect(libpq_url(url)) as conn, conn.transaction(force_rollback=True):
        put_back_functions(conn, function)
        conn.execute("SELECT ledger.query_support_rebuild()")
        return _rows(conn)


def _compare(database_url: str, function: str = OLD_FUNCTION) -> None:
    report = asyncio.run(_verify(database_url))
    assert report.mismatches == 0, report.sample
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        live = _rows(conn)
        assert live == _old_rebuild(database_url, function)
        conn.execute("SELECT ledger.query_support_rebuild()")
        assert _rows(conn) == live
        # The rebuild in chunks of 2 ids (5,000 in production): the chunks add up to the same.
        conn.execute("SELECT ledger.query_support_rebuild_in(2)")
        assert _rows(conn) == live


def _later_writes(ledger: Ledger, rng: random.Random) -> None:
    """Updates after the first writes: rows that change (plan, MRR, name, deletion, a
    customer moved between tenants), rows that go (a customer's only account deleted from
    the ledger) and refreshes that change nothing (a touch of a column the row ignores)."""
    changes = [
        ("UPDATE ledger.subscriptions SET plan = 'Team', committed_mrr = committed_mrr + 7"
         " WHERE subscription_id = 'sub_l03'", ()),
        ("UPDATE ledger.subscriptions SET status = 'canceled', ended_at = %s"
         " WHERE subscription_id = 'sub_l04'", (days_ago(1),)),
        ("UPDATE ledger.tenants SET name = 'Renamed' WHERE tenant_id = 'tl1'", ()),
        ("UPDATE ledger.accounts SET deleted_at = %s WHERE stripe_customer_id = 'cus_l20'",
         (days_ago(1),)),
        ("UPDATE ledger.accounts SET phone = '+100' WHERE stripe_customer_id = 'cus_l21'", ()),
        ("UPDATE ledger.customer_links SET tenant_id = 'tl0'"
         " WHERE stripe_customer_id = 'cus_l11'", ()),
        ("DELETE FROM ledger.subscriptions WHERE stripe_customer_id = 'cus_l22'", ()),
        ("DELETE FROM ledger.accounts WHERE stripe_customer_id = 'cus_l22'", ()),
        ("UPDATE ledger.tenants SET deleted_at = NULL WHERE tenant_id = 'tl3'", ()),
    ]
    rng.shuffle(changes)
    for statement, params in changes:
        ledger.execute(statement, params)
    # MRR events of three subscriptions in random order (some in the same second, one in
    # another currency): each arrival changes the steps after it, not the ones before
    events = [
        (sub, days_ago(40 - n // 2), ("SubscriptionRenewed", "SubscriptionUpgraded",
                                      "SubscriptionCancelled", "SubscriptionReactivated")[n % 4],
         rng.choice((0, 1000, 1500, 2500)), "EUR" if n == 7 else "USD")
        for sub in ("sub_l00", "sub_l01", "sub_l05") for n in range(9)
    ]
    rng.shuffle(events)
    for i, (sub, at, kind, mrr, currency) in enumerate(events):
        ledger.event(kind, at, subscription_id=sub, committed=mrr, currency=currency)
        if i % 9 == 8:
            _compare(ledger.url)


@pytest.mark.parametrize("seed", [23, 24, 25])
def test_in_place_refresh_rows_equal_the_0017_function(
    ledger: Ledger, database_url: str, seed: int
) -> None:
    rng = random.Random(seed)
    ops = _writes(ledger, rng)
    for i, op in enumerate(ops):
        op()
        if i % 11 == 10:
            _compare(database_url)
    _compare(database_url)
    _later_writes(ledger, rng)
    _compare(database_url)
    gone = ledger.execute("SELECT 1 FROM ledger.query_accounts WHERE account_id = 'cus_l22'")
    assert gone == []


def test_a_refresh_that_changes_nothing_leaves_the_rows_alone(
    ledger: Ledger, database_url: str
) -> None:
    for op in _writes(ledger, random.Random(7)):
        op()
    where = " FROM ledger.query_accounts ORDER BY account_id"
    before = ledger.execute("SELECT account_id, ctid::text, xmin::text" + where)
    assert len(before) > 10
    ids = [r[0] for r in before]
    ledger.execute("SELECT ledger.query_refresh_accounts(%s)", (ids,))
    assert ledger.execute("SELECT account_id, ctid::text, xmin::text" + where) == before
    # a change of one account rewrites that row only
    ledger.execute("UPDATE ledger.subscriptions SET committed_mrr = committed_mrr + 1"
                   " WHERE subscription_id = 'sub_l00'")
    after = ledger.execute("SELECT account_id, ctid::text, xmin::text" + where)
    moved = [a[0] for a, b in zip(after, before, strict=True) if a != b]
    owner = ledger.execute("SELECT ledger.query_account_ids(ARRAY['cus_l00'])")[0][0]
    assert moved == owner
    _compare(database_url)


def test_an_account_update_refreshes_only_when_an_account_column_moved(
    ledger: Ledger, database_url: str
) -> None:
    """query_on_accounts (0020): an update of columns no account row reads (payment method,
    phone) refreshes no account (the refresh is called with no ids, so it never takes its
    lock: query_lock's calls in the transaction count the refreshes that did work); a name
    change refreshes once, and the row follows."""
    for op in _writes(ledger, random.Random(5)):
        op()
    refreshes = (
        "SELECT pg_stat_get_xact_function_calls("
        "'ledger.query_lock(integer, text[])'::regprocedure)"
    )
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("SET track_functions = 'pl'")
        with conn.transaction(force_rollback=True):
            conn.execute("UPDATE ledger.accounts SET payment_method_brand = 'visa',"
                         " payment_method_last4 = '4242', phone = '+1'")
            assert conn.execute(refreshes).fetchone() in ((None,), (0,))
            conn.execute("UPDATE ledger.accounts SET name = 'Moved'"
                         " WHERE stripe_customer_id = 'cus_l20'")
            assert conn.execute(refreshes).fetchone() == (1,)
            row = conn.execute("SELECT name FROM ledger.query_accounts"
                               " WHERE account_id = 'cus_l20'").fetchone()
            assert row == ("Moved",)
    ledger.execute("UPDATE ledger.accounts SET tenant_id = 'tl2', payment_method_brand = 'amex'"
                   " WHERE stripe_customer_id IN ('cus_l15', 'cus_l16')")
    _compare(database_url)


def test_0020_downgrades_to_the_0017_function_and_back(database_url: str) -> None:
    upgrade_to_head(database_url)
    config = alembic_config(database_url)

    def body() -> str:
        rows = Ledger(database_url).execute(
            "SELECT pg_get_functiondef('ledger.query_refresh_accounts(text[])'::regprocedure)")
        return str(rows[0][0])

    head = body()
    assert "v_rows ledger.query_accounts[]" in head
    command.downgrade(config, "0019_dashboard_scaling")
    assert "DELETE FROM ledger.query_accounts t USING unnest(p_ids)" in body()
    upgrade_to_head(database_url)
    assert body() == head
