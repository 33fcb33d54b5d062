"""Migration 0023's cheaper query_* rebuild computes the rows 0020's functions computed.

0023 changed three functions without changing what they write: ``query_refresh_invoices``
finds an invoice's refunds with two equality joins (payment intent; charge, leaving out what
the first found) instead of one OR; ``query_refresh_mrr`` reads each subscription's MRR
events by a LATERAL index lookup; ``query_support_rebuild_in`` drops the row tables'
non-unique indexes after its TRUNCATE and builds them once at the end. The oracle is the
three functions as 0020 left them (0023's frozen downgrade copy): in a transaction rolled
back they are put back and ``query_support_rebuild()`` refills every query table. After
writes in random order (tenants, customers, subscriptions, events, MRR events; payments,
refunds matching by payment intent, by charge, by both, by neither; credit notes carrying
refund ids, void, without a date; then refunds and notes changed and deleted in random order)
every query table as the live triggers wrote it with the new functions must equal the old
functions' rebuild, the new rebuild, and the new rebuild in chunks of 2; VerifyLedger's
query-table check finds 0 mismatches, and the ledger's indexes are the same ones afterwards.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from services.common.config import libpq_url
from services.common.migrate import alembic_config, upgrade_to_head
from services.ledger.verify import QUERY_TABLES
from tests.ledger.queries.conftest import NOW, Ledger, put_back_functions
from tests.ledger.queries.test_account_refresh_in_place import _later_writes
from tests.ledger.queries.test_live_refresh import _verify, _writes
from tests.ledger.queries.test_payments_refresh import _world

pytestmark = pytest.mark.integration

VERSIONS = Path(__file__).resolve().parents[3] / "migrations" / "versions"
OLD_FUNCTIONS = (VERSIONS / "0023_downgrade_functions.sql").read_text(encoding="utf-8")
INDEXES = "SELECT indexdef FROM pg_indexes WHERE schemaname = 'ledger' ORDER BY indexname"


def _rows(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    return {
        table: [
            str(r[0])
            for r in conn.execute(
                f"SELECT t::text FROM ledger.{table} t ORDER BY 1"  # noqa: S608 - constants
            ).fetchall()
        ]
        for table in QUERY_TABLES
    }


def _old_rebuild(url: str) -> dict[str, list[str]]:
    """Every query table as 0020's functions rebuild it (rolled back afterwards)."""
    with psycopg.connect(libpq_url(url)) as conn, conn.transaction(force_rollback=True):
        put_back_functions(conn, OLD_FUNCTIONS)
        conn.execute("SELECT ledger.query_support_rebuild()")
        return _rows(conn)


def _compare(url: str) -> dict[str, list[str]]:
    report = asyncio.run(_verify(url))
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        indexes = conn.execute(INDEXES).fetchall()
        live = _rows(conn)
        old = _old_rebuild(url)
        conn.execute("SELECT ledger.query_support_rebuild()")
        rebuilt = _rows(conn)
        assert rebuilt == old
        conn.execute("SELECT ledger.query_support_rebuild_in(2)")
        assert _rows(conn) == rebuilt
        assert conn.execute(INDEXES).fetchall() == indexes  # the same indexes, rebuilt
    # since 0024 with no exception: a day whose last revenue row left is deleted, not kept at
    # 0 (tests/ledger/queries/test_revenue_days.py)
    assert report.mismatches == 0, report.sample
    assert live == rebuilt
    return rebuilt


def _reversal_writes(
    conn: psycopg.Connection[Any], rng: random.Random
) -> list[tuple[str, tuple[Any, ...]]]:
    """Changes of refunds and credit notes, one statement each, in random order: notes that
    carry their invoice's refunds (a refund a note carries is the note's row, not its own),
    notes without a date (dated by their refunds), voided notes, refunds failing, changing,
    moving off their charge, deleted."""
    refunds = conn.execute(
        "SELECT r.refund_id, p.invoice_id FROM ledger.refunds r JOIN ledger.payments p"
        " ON p.payment_intent_id = r.payment_intent_id OR p.invoice_charge_id = r.charge_id"
        " ORDER BY 1"
    ).fetchall()
    notes = [
        r[0]
        for r in conn.execute(
            "SELECT credit_note_id FROM ledger.credit_notes ORDER BY 1"
        ).fetchall()
    ]
    statements: list[tuple[str, tuple[Any, ...]]] = []
    for refund_id, invoice_id in rng.sample(refunds, k=min(12, len(refunds))):
        statements.append(
            (
                "INSERT INTO ledger.credit_notes (credit_note_id, invoice_id, amount, total,"
                " currency, status, refund_ids, credit_note_created, state_event_created,"
                " state_event_id) VALUES (%s, %s, 300, 300, 'USD', 'issued', %s, %s, %s,"
                " 'evt_state')",
                (
                    f"cn_r_{refund_id}",
                    invoice_id,
                    [refund_id],
                    None if rng.random() < 0.5 else NOW - timedelta(days=5),
                    NOW - timedelta(days=400),
                ),
            )
        )
    for note in rng.sample(notes, k=min(6, len(notes))):
        statements.append(
            ("UPDATE ledger.credit_notes SET status = 'void' WHERE credit_note_id = %s", (note,))
        )
    for refund_id, _invoice in rng.sample(refunds, k=min(10, len(refunds))):
        statements.append(
            (
                rng.choice(
                    (
                        "UPDATE ledger.refunds SET status = 'failed' WHERE refund_id = %s",
                        "UPDATE ledger.refunds SET amount = amount + 1 WHERE refund_id = %s",
                        "UPDATE ledger.refunds SET charge_id = NULL WHERE refund_id = %s",
                        "DELETE FROM ledger.refunds WHERE refund_id = %s",
                    )
                ),
                (refund_id,),
            )
        )
    for refund_id, _invoice in rng.sample(refunds, k=min(5, len(refunds))):
        # a refund of the invoice's charge under an intent no invoice has: matched by charge
        # although its intent is set (the second join's case)
        statements.append(
            (
                "UPDATE ledger.refunds SET payment_intent_id = 'pi_other_' || refund_id"
                " WHERE refund_id = %s AND charge_id IS NOT NULL",
                (refund_id,),
            )
        )
    rng.shuffle(statements)
    return statements


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_rebuild_rows_equal_the_0020_functions(
    ledger: Ledger, database_url: str, seed: int
) -> None:
    rng = random.Random(seed)
    for i, op in enumerate(_writes(ledger, rng)):
        op()
        if i % 23 == 22:
            _compare(database_url)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        kinds = _world(conn, rng, 60, crossed=False)
        assert min(v for k, v in kinds.items() if k != "crossed") > 0, kinds
        statements = _reversal_writes(conn, rng)
    live = _compare(database_url)
    assert len(live["query_invoice_rows"]) > 60
    for i, (statement, params) in enumerate(statements):
        ledger.execute(statement, params)
        if i % 9 == 8:
            _compare(database_url)
    _compare(database_url)
    _later_writes(ledger, rng)  # account changes, then MRR events in random order
    live = _compare(database_url)
    kinds_of_rows = {row.split(",")[1] for row in live["query_invoice_rows"]}
    assert kinds_of_rows == {"invoice", "refund", "credit_note"}
    assert len(live["query_mrr_steps"]) > 10


def test_the_rebuild_builds_the_dropped_indexes_again_or_rolls_back(
    ledger: Ledger, database_url: str
) -> None:
    """The non-unique indexes are dropped inside the rebuild's transaction: after it they are
    all there with their definitions, and a rebuild that fails half-way leaves them too."""
    for op in _writes(ledger, random.Random(3)):
        op()
    with psycopg.connect(libpq_url(database_url)) as conn:
        before = conn.execute(INDEXES).fetchall()
        assert sum("query_accounts" in str(r[0]) for r in before) > 10
        with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
            conn.execute("SELECT ledger.query_support_rebuild_in(0)")  # / 0 after the drop
        assert conn.execute(INDEXES).fetchall() == before
        conn.execute("SELECT ledger.query_support_rebuild()")
        assert conn.execute(INDEXES).fetchall() == before


def test_0023_downgrades_to_the_0020_functions_and_back(database_url: str) -> None:
    upgrade_to_head(database_url)
    config = alembic_config(database_url)
    before = ScriptDirectory.from_config(config).get_revision("0023_rebuild_cost").down_revision
    assert isinstance(before, str)
    names = ("query_refresh_invoices", "query_refresh_mrr", "query_support_rebuild_in")

    def bodies() -> list[str]:
        return [
            str(
                Ledger(database_url).execute(
                    "SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n"
                    " ON n.oid = p.pronamespace WHERE n.nspname = 'ledger' AND p.proname = %s",
                    (name,),
                )[0][0]
            )
            for name in names
        ]

    command.downgrade(config, "0023_rebuild_cost")  # later revisions split the rebuild (0025)
    at_0023 = bodies()
    assert "matched_invoice_id" in at_0023[0] and "CROSS JOIN LATERAL" in at_0023[1]
    assert "DROP INDEX" in at_0023[2]
    command.downgrade(config, before)
    old = bodies()
    assert "matched_invoice_id" not in old[0] and "CROSS JOIN LATERAL" not in old[1]
    assert "DROP INDEX" not in old[2]
    command.upgrade(config, "0023_rebuild_cost")
    assert bodies() == at_0023
    upgrade_to_head(database_url)


def test_0025_splits_the_rebuild_into_parts_and_downgrades_to_one_function(
    database_url: str,
) -> None:
    upgrade_to_head(database_url)
    config = alembic_config(database_url)

    def functions() -> dict[str, str]:
        rows = Ledger(database_url).execute(
            "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n"
            " ON n.oid = p.pronamespace WHERE n.nspname = 'ledger'"
            " AND p.proname LIKE 'query\\_support\\_%%'"
        )
        return {str(r[0]): str(r[1]) for r in rows}

    head = functions()
    assert {"query_support_parts", "query_support_rebuild_part"} <= set(head)
    assert "DROP INDEX" in head["query_support_rebuild_part"]
    assert "DROP INDEX" not in head["query_support_rebuild_in"]
    parts = Ledger(database_url).execute("SELECT ledger.query_support_parts()")[0][0]
    assert parts == ["accounts", "mrr", "invoices", "events", "logins"]
    with pytest.raises(psycopg.errors.CaseNotFound):
        Ledger(database_url).execute("SELECT ledger.query_support_rebuild_part('nothing')")
    command.downgrade(config, "0024_revenue_days")
    old = functions()
    assert "query_support_parts" not in old and "query_support_rebuild_part" not in old
    assert "DROP INDEX" in old["query_support_rebuild_in"]
    upgrade_to_head(database_url)
    assert functions() == head
