"""Migration 0017's account refresh writes the rows 0016's wrote.

0017 changed one thing in ``ledger.query_refresh_accounts``: the customer-side drift check
asks per customer of the account instead of one ``= ANY(customers)`` (so a ledger without
statistics probes the partial index instead of scanning billing_events per account). The
oracle is the old function itself, from the revision's frozen downgrade copy: in a
transaction that is rolled back it is put back and ``query_support_rebuild()`` refills
``query_accounts``; those rows must equal the rows the live triggers wrote with the new
function after writes in random order (single rows, drift events of customers, of tenants,
of customers linked to another tenant, none), and the new function's own rebuild; and
VerifyLedger's query-table check finds 0 mismatches. (0017
also made a customer link refresh the tenants of the customer's drift events: without it a
link written after such an event left the event's tenant flagged, and this test fails.)
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command

from services.common.config import libpq_url
from services.common.migrate import alembic_config, upgrade_to_head
from services.ledger.verify import VerifyReport, verify_query_tables
from tests.ledger.queries.conftest import Ledger, days_ago, put_back_functions

pytestmark = pytest.mark.integration

VERSIONS = Path(__file__).resolve().parents[3] / "migrations" / "versions"
OLD_FUNCTION = (VERSIONS / "0017_downgrade_functions.sql").read_text(encoding="utf-8")
ROWS = "SELECT q::text FROM ledger.query_accounts q ORDER BY q.account_id"


def _writes(ledger: Ledger, rng: random.Random) -> list[Callable[[], Any]]:
    """Tenants, customers (owned by a tenant column, linked to a tenant, possibly another
    one than their column says, or on their own), subscriptions, and events: drift events
    of customers, of tenants only, of a customer linked away from the event's tenant, and
    ordinary events; as single-row writes to be run in any order."""
    ops: list[Callable[[], Any]] = []
    tenants = [f"tl{t}" for t in range(4)]
    for t, tenant in enumerate(tenants):
        ops.append(partial(ledger.tenant, tenant, f"Tenant {t}", days_ago(300 - t),
                           deleted_at=days_ago(2) if t == 3 else None))
    customers = [f"cus_l{i:02d}" for i in range(24)]
    for i, customer in enumerate(customers):
        ops.append(partial(ledger.customer, customer, name=f"Live {i % 5}",
                           created_at=days_ago(1 + i), tenant_id=tenants[i % 4] if i < 8 else None))
        if 8 <= i < 14:  # linked: to the next tenant round, unlike any column
            ops.append(partial(ledger.execute,
                               "INSERT INTO ledger.customer_links (stripe_customer_id, tenant_id)"
                               " VALUES (%s, %s)", (customer, tenants[(i + 1) % 4])))
        if i % 3 != 2:
            ops.append(partial(ledger.subscription, f"sub_l{i:02d}", customer,
                               plan=("Pro", "Team")[i % 2], mrr=1000 + 10 * i))
    for n, customer in enumerate(rng.sample(customers, k=9)):
        ops.append(partial(ledger.event, "Unclassified", days_ago(1 + n), customer_id=customer))
    # tenant-side drift: an event of a tenant without a customer, and one of a customer
    # linked to ANOTHER tenant than the event's (counts for the linked tenant only through
    # its customer, not for the event's tenant)
    ops.append(partial(ledger.event, "Unclassified", days_ago(3), tenant_id="tl2"))
    ops.append(partial(ledger.event, "Unclassified", days_ago(4), customer_id="cus_l09",
                       tenant_id="tl0"))
    for n in range(12):  # ordinary events of any customer
        ops.append(partial(ledger.event, ("NoOp", "PaymentFailed", "SubscriptionRenewed")[n % 3],
                           days_ago(n), customer_id=rng.choice(customers)))
    rng.shuffle(ops)
    return ops


def _old_rebuild(url: str) -> list[str]:
    """query_accounts as the 0016 function rebuilds it (rolled back afterwards)."""
    with psycopg.connect(libpq_url(url)) as conn, conn.transaction(force_rollback=True):
        put_back_functions(conn, OLD_FUNCTION)
        conn.execute("SELECT ledger.query_support_rebuild()")
        return [str(r[0]) for r in conn.execute(ROWS).fetchall()]


async def _verify(url: str) -> VerifyReport:
    """VerifyLedger's query-table half: every query_* table against the rebuild."""
    report = VerifyReport()
    conn = await psycopg.AsyncConnection.connect(libpq_url(url))
    async with conn, conn.transaction():
        await verify_query_tables(conn, report, sample_size=5)
    return report


def _compare(ledger: Ledger, database_url: str) -> list[str]:
    report = asyncio.run(_verify(database_url))
    assert report.mismatches == 0, report.sample
    live = [str(r[0]) for r in ledger.execute(ROWS)]
    assert live == _old_rebuild(database_url)
    ledger.execute("SELECT ledger.query_support_rebuild()")
    assert [str(r[0]) for r in ledger.execute(ROWS)] == live
    return live


@pytest.mark.parametrize("seed", [17, 18, 19])
def test_refresh_rows_equal_the_0016_function(
    ledger: Ledger, database_url: str, seed: int
) -> None:
    rng = random.Random(seed)
    ops = _writes(ledger, rng)
    for i, op in enumerate(ops):
        op()
        if i % 9 == 8:  # part-way too: drift flags appear as their events arrive
            _compare(ledger, database_url)
    _compare(ledger, database_url)
    flags = dict(ledger.execute("SELECT account_id, drift_detected FROM ledger.query_accounts"))
    assert sum(flags.values()) >= 5 and not all(flags.values())  # both kinds present
    assert flags["tl2"]  # a tenant's own drift event
    # later writes: a customer moves (link changed), another is deleted; refreshed live
    ledger.execute("UPDATE ledger.customer_links SET tenant_id = 'tl3'"
                   " WHERE stripe_customer_id = 'cus_l09'")
    ledger.execute("UPDATE ledger.accounts SET deleted_at = %s"
                   " WHERE stripe_customer_id = 'cus_l10'", (days_ago(1),))
    _compare(ledger, database_url)


def test_0017_downgrades_to_the_0016_function_and_back(database_url: str) -> None:
    upgrade_to_head(database_url)
    config = alembic_config(database_url)

    def body() -> str:
        rows = Ledger(database_url).execute(
            "SELECT pg_get_functiondef('ledger.query_refresh_accounts(text[])'::regprocedure)")
        return str(rows[0][0])

    head = body()
    assert "unnest(c.customers) AS cu(id)" in head
    command.downgrade(config, "0016_query_scaling2")
    assert "b.stripe_customer_id = ANY(c.customers) AND b.drift_detected" in body()
    upgrade_to_head(database_url)
    assert body() == head
