"""A revenue day no revenue row counts in any more is deleted, not kept at amount 0 (0024).

``query_revenue_daily`` moves by new - old as invoices, refunds and credit notes change; the
rebuild (VerifyLedger's reference) only adds, so it has no row for a day whose last revenue
row left. Before 0024 the live refresh kept such a day at 0 and VerifyLedger - and the
back-office banner that shows it - reported a healthy ledger as inconsistent. A day whose
rows sum to 0 (a full refund on the payment's own day) is a real row in both and stays.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from alembic import command

from services.common.migrate import alembic_config
from tests.ledger.queries.conftest import NOW, Ledger
from tests.ledger.queries.test_live_refresh import _verify

pytestmark = pytest.mark.integration

PAID = NOW - timedelta(days=10)
REFUNDED = NOW - timedelta(days=5)


def _days(ledger: Ledger) -> dict[date, int]:
    return {
        row[0]: int(row[1])
        for row in ledger.execute(
            "SELECT day, amount FROM ledger.query_revenue_daily WHERE currency = 'USD'"
        )
    }


def _rebuilt_days(ledger: Ledger) -> dict[date, int]:
    live = _days(ledger)
    ledger.execute("SELECT ledger.query_support_rebuild()")
    assert _days(ledger) == live  # the live rows are the rebuild's, zero days included
    return live


@pytest.mark.parametrize(
    "leave",
    [
        "UPDATE ledger.refunds SET status = 'failed' WHERE refund_id = 're_1'",
        "DELETE FROM ledger.refunds WHERE refund_id = 're_1'",
        "UPDATE ledger.refunds SET payment_intent_id = NULL, charge_id = NULL"
        " WHERE refund_id = 're_1'",
    ],
    ids=["failed", "deleted", "unmatched"],
)
def test_a_day_whose_last_revenue_row_leaves_is_deleted(ledger: Ledger, leave: str) -> None:
    ledger.invoice("in_1", "cus_1", total=1000, created=PAID, paid_at=PAID)
    ledger.refund("re_1", "in_1", amount=400, at=REFUNDED)
    assert _days(ledger) == {PAID.date(): 1000, REFUNDED.date(): -400}

    ledger.execute(leave)

    assert _rebuilt_days(ledger) == {PAID.date(): 1000}  # was {..., REFUNDED: 0} before 0024
    assert asyncio.run(_verify(ledger.url)).mismatches == 0


def test_a_day_whose_rows_sum_to_zero_keeps_its_row(ledger: Ledger) -> None:
    ledger.invoice("in_2", "cus_2", total=500, created=PAID, paid_at=PAID)
    ledger.refund("re_2", "in_2", amount=500, at=PAID)  # a full refund the same day
    ledger.invoice("in_3", "cus_3", total=700, created=REFUNDED, paid_at=REFUNDED)
    ledger.refund("re_3", "in_3", amount=200, at=PAID)
    ledger.execute("UPDATE ledger.refunds SET status = 'failed' WHERE refund_id = 're_3'")

    assert _rebuilt_days(ledger) == {PAID.date(): 0, REFUNDED.date(): 700}
    assert asyncio.run(_verify(ledger.url)).mismatches == 0


def test_the_upgrade_deletes_the_zero_days_earlier_versions_left(
    ledger: Ledger, database_url: str
) -> None:
    config = alembic_config(database_url)
    command.downgrade(config, "0023_rebuild_cost")
    ledger.invoice("in_4", "cus_4", total=900, created=PAID, paid_at=PAID)
    ledger.refund("re_4", "in_4", amount=300, at=REFUNDED)
    ledger.execute("UPDATE ledger.refunds SET status = 'failed' WHERE refund_id = 're_4'")
    assert _days(ledger) == {PAID.date(): 900, REFUNDED.date(): 0}  # 0023's leftover

    command.upgrade(config, "head")

    assert _rebuilt_days(ledger) == {PAID.date(): 900}
