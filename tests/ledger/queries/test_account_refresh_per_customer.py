"""Migration 0026's account refresh reads an account's subscriptions per customer, by index.

0026 changed two things in ``ledger.query_refresh_accounts`` (issue 12, ninth pass): the
account's primary subscription and its MRR sums read ``ledger.subscriptions`` per customer of
the account (``OFFSET 0``: one lookup through ``subscriptions_customer`` each) instead of
``stripe_customer_id = ANY(c.customers)``, which a ledger without statistics (a live ledger
that started empty, until autovacuum's first ANALYZE) planned as a sequential scan of
subscriptions per account, twice; and the stored rows are compared per id once, without a
second ``unnest(p_ids)`` joined to the computed ones.

The rows must not change: the oracle is the 0020 function from 0026's frozen downgrade copy,
put back in a transaction that is rolled back, whose ``query_support_rebuild()`` must give the
rows the new function wrote live (after the single-row writes of test_live_refresh and
test_account_refresh_in_place, plus accounts with several subscriptions in two currencies,
ended ones among them: what the primary subscription and the MRR sums choose between).
The plan: on a never-analyzed ledger of 400 subscriptions, the old function's statement
scans subscriptions sequentially (the test's own check that it reproduces the case) and the
new one never does.
"""

from __future__ import annotations

import random
from pathlib import Path

import psycopg
import pytest
from alembic import command

from services.common.config import libpq_url
from services.common.migrate import alembic_config, upgrade_to_head
from tests.ledger.queries.conftest import Ledger, days_ago
from tests.ledger.queries.test_account_refresh_in_place import _compare as compare_with
from tests.ledger.queries.test_account_refresh_in_place import _later_writes
from tests.ledger.queries.test_live_refresh import _writes

pytestmark = pytest.mark.integration

VERSIONS = Path(__file__).resolve().parents[3] / "migrations" / "versions"
OLD_FUNCTION = (VERSIONS / "0026_downgrade_functions.sql").read_text(encoding="utf-8")


def _compare(url: str) -> None:
    """Every account and MRR table as written live equals the 0020 function's rebuild."""
    compare_with(url, OLD_FUNCTION)


def _currency_writes(ledger: Ledger, rng: random.Random) -> None:
    """More subscriptions for some customers: in EUR beside USD, ended, cancelling, later
    started: the primary subscription is the live one started last, the sums count its
    currency only, and an account with MRR in another currency is mixed."""
    kinds = [  # (currency, MRR, status, ended, cancelling at period end)
        ("EUR", 900, "active", False, False),
        ("EUR", 0, "canceled", True, False),
        ("USD", 400, "active", False, True),
        ("USD", 300, "trialing", False, False),
    ]
    for n in range(10):
        currency, mrr, status, ended, cancelling = rng.choice(kinds)
        ledger.subscription(
            f"sub_x{n:02d}",
            f"cus_l{rng.randrange(24):02d}",
            plan=("Pro", "Team", "Scale")[n % 3],
            mrr=mrr,
            currency=currency,
            status=status,
            ended_at=days_ago(3) if ended else None,
            cancel_at_period_end=cancelling,
            state_event_created=days_ago(rng.randrange(1, 90)),
        )


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_rows_equal_the_0020_function(ledger: Ledger, database_url: str, seed: int) -> None:
    rng = random.Random(seed)
    for i, op in enumerate(_writes(ledger, rng)):
        op()
        if i % 13 == 12:
            _compare(database_url)
    _currency_writes(ledger, rng)
    _compare(database_url)
    mixed = ledger.execute("SELECT count(*) FROM ledger.query_accounts WHERE mixed_currency")
    assert mixed[0][0] >= 1  # the case is there
    _later_writes(ledger, rng)
    _compare(database_url)


def _refresh_plans(url: str, function: str | None) -> str:
    """The plans (auto_explain, nested statements) of one query_refresh_accounts call for 100
    accounts, with the 0020 function put back first if ``function`` is given; rolled back."""
    plans: list[str] = []
    with psycopg.connect(libpq_url(url)) as conn:
        conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
        with conn.transaction(force_rollback=True):
            if function is not None:
                conn.execute(function)  # type: ignore[arg-type]
            conn.execute("LOAD 'auto_explain'")
            for setting in (
                "auto_explain.log_min_duration = 0",
                "auto_explain.log_nested_statements = on",
                "auto_explain.log_level = notice",
                "client_min_messages = notice",
            ):
                conn.execute(f"SET LOCAL {setting}")  # type: ignore[arg-type]
            conn.execute(
                "SELECT ledger.query_refresh_accounts(ARRAY(SELECT 'cus_p' || lpad(g::text, 4,"
                " '0') FROM generate_series(1, 100) AS g))"
            )
    return "\n".join(plan for plan in plans if "query_account_members" in plan)


def test_a_ledger_without_statistics_reads_subscriptions_per_customer(
    ledger: Ledger, database_url: str
) -> None:
    ledger.execute("ALTER TABLE ledger.subscriptions SET (autovacuum_enabled = false)")
    ledger.execute(
        "INSERT INTO ledger.accounts (stripe_customer_id, name, currency, stripe_created_at,"
        " state_event_created, state_event_id)"
        " SELECT 'cus_p' || lpad(g::text, 4, '0'), 'P' || g, 'USD', %s, %s, 'evt_p' || g"
        " FROM generate_series(1, 400) AS g",
        (days_ago(100), days_ago(100)),
    )
    ledger.execute(
        "INSERT INTO ledger.subscriptions (subscription_id, stripe_customer_id, status, plan,"
        " currency, committed_mrr, forward_mrr, state_event_created, state_event_id)"
        " SELECT 'sub_p' || g, 'cus_p' || lpad(g::text, 4, '0'), 'active', 'Pro', 'USD',"
        " 1000 + g, 1000 + g, %s, 'evt_ps' || g FROM generate_series(1, 400) AS g",
        (days_ago(50),),
    )
    never = ledger.execute(
        "SELECT last_analyze IS NULL AND last_autoanalyze IS NULL FROM pg_stat_user_tables"
        " WHERE schemaname = 'ledger' AND relname = 'subscriptions'"
    )
    assert never == [(True,)]
    old = _refresh_plans(database_url, OLD_FUNCTION)
    assert "Seq Scan on subscriptions" in old  # the case: the 0020 statement scans per account
    new = _refresh_plans(database_url, None)
    assert "subscriptions_customer" in new
    assert "Seq Scan on subscriptions" not in new


def test_0026_downgrades_to_the_0020_function_and_back(database_url: str) -> None:
    upgrade_to_head(database_url)
    config = alembic_config(database_url)

    def body() -> str:
        rows = Ledger(database_url).execute(
            "SELECT pg_get_functiondef('ledger.query_refresh_accounts(text[])'::regprocedure)"
        )
        return str(rows[0][0])

    head = body()
    assert "WHERE s1.stripe_customer_id = cu.id OFFSET 0" in head
    command.downgrade(config, "0025_parallel_rebuild")
    assert "WHERE s.stripe_customer_id = ANY(c.customers)" in body()
    upgrade_to_head(database_url)
    assert body() == head
