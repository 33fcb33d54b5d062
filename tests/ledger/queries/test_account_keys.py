"""Migration 0027: accounts indexed by their default payment method (issue 12, ninth pass).

``ACCOUNTS_REFRESH`` keyed by a batch recomputes its customers' accounts and the accounts whose
default payment method is one of its payment methods:
``stripe_customer_id = ANY(..) OR default_payment_method_id = ANY(..)``. No index held the
second column, so no plan could serve the ``OR`` but a pass over every account - in each live
batch, growing with the ledger (16-44 ms per batch at 20,000 accounts). With the index the
planner can combine both (a BitmapOr) when the keys are few against the accounts.

Checked on real PostgreSQL, a never-analyzed ledger of 20,000 accounts (a live ledger that
started empty): the keyed refresh reads only the keyed accounts with the index, and every
account without it (0027 downgraded: the test's own check that it reproduces the case).
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from alembic import command

from services.common.config import libpq_url
from services.common.migrate import alembic_config, upgrade_to_head
from services.ledger import projection
from tests.ledger.queries.conftest import NOW, Ledger

pytestmark = pytest.mark.integration

ACCOUNTS = 20_000
INDEX = "accounts_default_payment_method"


def _fill(ledger: Ledger) -> None:
    """Accounts, every third naming a default payment method, and two methods each."""
    created = NOW - timedelta(days=300)
    ledger.execute(
        "INSERT INTO ledger.accounts (stripe_customer_id, name, currency, stripe_created_at,"
        " default_payment_method_id, state_event_created, state_event_id)"
        " SELECT 'cus_k' || g, 'K' || g, 'USD', %s,"
        " CASE WHEN g %% 3 = 0 THEN 'pm_k' || g || '_b' END, %s, 'evt_k' || g"
        " FROM generate_series(1, %s) AS g",
        (created, created, ACCOUNTS),
    )
    ledger.execute(
        "INSERT INTO ledger.payment_methods (payment_method_id, stripe_customer_id, brand,"
        " last4, exp_month, exp_year, state_event_created, state_event_id)"
        " SELECT 'pm_k' || g || '_' || v, 'cus_k' || g, 'visa', lpad((g %% 10000)::text, 4, '0'),"
        "  1 + g %% 12, 2030, %s + make_interval(secs => g), 'evt_pm' || g || v"
        " FROM generate_series(1, %s) AS g, unnest(ARRAY['a', 'b']) AS v",
        (created, ACCOUNTS),
    )


def _plan(url: str) -> str:
    """EXPLAIN ANALYZE of a batch's accounts refresh (rolled back): two customers, and the
    account whose default payment method the batch wrote."""
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) "  # type: ignore[arg-type]
            + projection.ACCOUNTS_REFRESH.format(s="ledger", keys=projection._ACCOUNT_KEYS),
            (["cus_k4", "cus_k5"], ["pm_k9_b"]),
        ).fetchall()
        conn.rollback()
    return "\n".join(str(r[0]) for r in rows)


def test_a_ledger_without_statistics_reads_only_the_keyed_accounts(
    ledger: Ledger, database_url: str
) -> None:
    for table in ("accounts", "payment_methods"):
        ledger.execute(f"ALTER TABLE ledger.{table} SET (autovacuum_enabled = false)")
    _fill(ledger)
    never = ledger.execute(
        "SELECT bool_and(last_analyze IS NULL AND last_autoanalyze IS NULL)"
        " FROM pg_stat_user_tables WHERE schemaname = 'ledger'"
        " AND relname IN ('accounts', 'payment_methods')"
    )
    assert never == [(True,)]
    with_index = _plan(database_url)
    assert INDEX in with_index
    assert "Seq Scan on accounts" not in with_index

    command.downgrade(alembic_config(database_url), "0026_live9")
    without = _plan(database_url)
    assert "Seq Scan on accounts a2" in without  # the case: every account read
    upgrade_to_head(database_url)


def test_0027_downgrades_and_upgrades(database_url: str) -> None:
    def indexes() -> list[str]:
        rows = Ledger(database_url).execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'ledger' AND indexname = %s",
            (INDEX,),
        )
        return [str(r[0]) for r in rows]

    assert indexes() == [INDEX]
    command.downgrade(alembic_config(database_url), "0026_live9")
    assert indexes() == []
    upgrade_to_head(database_url)
    assert indexes() == [INDEX]
