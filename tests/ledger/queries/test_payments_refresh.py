"""The payments refund/credit refresh, rewritten as index probes, computes what the old one did.

``PAYMENTS_REFRESH`` (services/ledger/projection.py) now finds an invoice's refunds and
charges with two equality probes (payment intent, then charge, leaving out what the first
found) instead of one OR, so that a ledger without statistics does not scan refunds once per
payment. The oracle is the statement before the rewrite
(tests/ledger/queries/payments_refresh_oracle.py): on random ledgers on REAL PostgreSQL
(refunds and charges matching an invoice by payment intent, by charge, by both, by both of
DIFFERENT invoices, by neither; partial and full refunds; failed, canceled, pending and
status-less refunds; credit notes issued and void), both statements run on the same rows,
each in a transaction rolled back, for every payment and for random subsets of keys, and
must leave the same payments columns. A refund matching by both keys counts once: a
rewrite that counted it in both probes fails here.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from services.common.config import libpq_url
from services.ledger.projection import _PAYMENT_KEYS, PAYMENTS_REFRESH
from services.ledger.verify import VerifyReport, verify_query_tables
from tests.ledger.queries.conftest import NOW
from tests.ledger.queries.payments_refresh_oracle import OLD_PAYMENTS_REFRESH

pytestmark = pytest.mark.integration

COLUMNS = (
    "SELECT invoice_id, amount_refunded, refunded_at, amount_credited, credit_noted_at"
    " FROM ledger.payments ORDER BY invoice_id"
)
STATE = {"state_event_created": NOW - timedelta(days=400), "state_event_id": "evt_state"}


def _insert(conn: psycopg.Connection[Any], table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    conn.cursor().executemany(
        f"INSERT INTO ledger.{table} ({', '.join(cols)})"  # noqa: S608 - test's own names
        f" VALUES ({', '.join(['%s'] * len(cols))})",
        [[r[c] for c in cols] for r in rows],
    )


def _world(
    conn: psycopg.Connection[Any], rng: random.Random, n: int, *, crossed: bool = True
) -> dict[str, int]:
    """Payments, refunds, charges and credit notes pointing at them in every way the two
    keys allow; returns how many refunds of each kind were written (the test's own check
    that the interesting cases are there). ``crossed``: refunds whose payment intent is
    another invoice's than their charge's (never in Stripe; they belong to two invoices, and
    query_invoice_rows keeps one row per refund, so VerifyLedger reports them however they
    were written)."""
    at = NOW - timedelta(days=30)
    payments, refunds, charges, notes = [], [], [], []
    kinds = {"by_pi": 0, "by_charge": 0, "by_both": 0, "crossed": 0, "orphan": 0}
    for i in range(n):
        pi = f"pi_{i:04d}" if rng.random() < 0.85 else None
        ch = f"ch_{i:04d}" if rng.random() < 0.85 else None
        total = rng.choice((1000, 2500, 9900))
        payments.append({
            "invoice_id": f"in_{i:04d}", "stripe_customer_id": f"cus_{i % 7}",
            "status": "paid", "currency": "USD", "total": total, "amount_paid": total,
            "invoice_created": at + timedelta(hours=i), "paid_at": at + timedelta(hours=i),
            "payment_intent_id": pi, "invoice_charge_id": ch, **STATE,
        })
        if ch is not None and rng.random() < 0.7:  # the invoice's charge, maybe refunded
            refunded = rng.choice((0, total // 3, total))
            charges.append({
                "charge_id": ch, "payment_intent_id": pi if rng.random() < 0.8 else None,
                "invoice_id": f"in_{i:04d}", "amount": total, "currency": "USD",
                "status": "succeeded", "amount_refunded": refunded,
                "refunded_at": at + timedelta(days=rng.randint(1, 20)) if refunded else None,
                **STATE,
            })
        if pi is not None and rng.random() < 0.15:  # a second charge of the same intent
            charges.append({
                "charge_id": f"ch_retry_{i:04d}", "payment_intent_id": pi, "invoice_id": None,
                "amount": total, "currency": "USD", "status": "failed",
                "amount_refunded": rng.choice((0, 100)),
                "refunded_at": at + timedelta(days=3), **STATE,
            })
        for r in range(rng.choice((0, 0, 1, 1, 2, 3))):
            kind = rng.choice(("by_pi", "by_charge", "by_both", "by_both", "crossed", "orphan")
                              if crossed else ("by_pi", "by_charge", "by_both", "orphan"))
            other = rng.randrange(n)
            rpi = {"by_pi": pi, "by_both": pi, "crossed": f"pi_{other:04d}"}.get(kind)
            rch = {"by_charge": ch, "by_both": ch, "crossed": ch}.get(kind)
            if kind == "orphan":
                rpi, rch = f"pi_gone_{i}_{r}", f"ch_gone_{i}_{r}"
            kinds[kind] += 1
            refunds.append({
                "refund_id": f"re_{i:04d}_{r}", "charge_id": rch, "payment_intent_id": rpi,
                "amount": rng.choice((total, total // 2, total // 4 + 1)), "currency": "USD",
                "status": rng.choice(("succeeded", "succeeded", "pending", None, "failed",
                                      "canceled")),
                "refund_created": at + timedelta(days=rng.randint(1, 25), minutes=r), **STATE,
            })
        for c in range(rng.choice((0, 0, 0, 1, 2))):
            notes.append({
                "credit_note_id": f"cn_{i:04d}_{c}", "invoice_id": f"in_{i:04d}",
                "amount": total // 5, "total": rng.choice((total // 5, None)),
                "currency": "USD", "status": rng.choice(("issued", "void", None)),
                "credit_note_created": at + timedelta(days=rng.randint(1, 25)), **STATE,
            })
    for table, rows in (("payments", payments), ("refunds", refunds), ("charges", charges),
                        ("credit_notes", notes)):
        _insert(conn, table, rows)
    return kinds


def _after(conn: psycopg.Connection[Any], statement: str, keys: str,
           params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The payments columns after the statement, in a transaction rolled back."""
    with conn.transaction(force_rollback=True):
        conn.execute(statement.format(s="ledger", keys=keys), params)  # type: ignore[arg-type]
        return conn.execute(COLUMNS).fetchall()


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_rewritten_refresh_equals_the_old_statement(database_url: str, seed: int) -> None:
    rng = random.Random(seed)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        kinds = _world(conn, rng, 90)
        assert min(kinds.values()) > 0, kinds
        before = conn.execute(COLUMNS).fetchall()
        # every payment at once (as refresh_all_derived runs it)
        old = _after(conn, OLD_PAYMENTS_REFRESH, "true", ())
        assert old != before  # the refresh has something to do
        assert sum(1 for r in old if r[1]) > 20 and sum(1 for r in old if r[3]) > 5
        assert _after(conn, PAYMENTS_REFRESH, "true", ()) == old
        # a batch's keys (as _refresh_derived runs it): random invoices, intents, charges
        rows = conn.execute(
            "SELECT invoice_id, payment_intent_id, invoice_charge_id FROM ledger.payments"
        ).fetchall()
        for _ in range(12):
            picked = rng.sample(rows, k=rng.randint(1, 25))
            params = (
                [r[0] for r in picked if rng.random() < 0.5],
                [r[1] for r in picked if r[1] and rng.random() < 0.5],
                [r[2] for r in picked if r[2] and rng.random() < 0.5],
            )
            expected = _after(conn, OLD_PAYMENTS_REFRESH, _PAYMENT_KEYS.replace("%b", "%s"),
                              params)
            assert _after(conn, PAYMENTS_REFRESH, _PAYMENT_KEYS.replace("%b", "%s"),
                          params) == expected


def _seq_scans(node: dict[str, Any]) -> list[str]:
    own = [node["Relation Name"]] if node.get("Node Type") == "Seq Scan" else []
    return own + [s for child in node.get("Plans", []) for s in _seq_scans(child)]


def test_never_analyzed_ledger_probes_refunds_and_charges_by_index(database_url: str) -> None:
    """The plan, on a ledger autovacuum never analyzed: no sequential scan of refunds or
    charges. At this size (160 payments, ~200 refunds, as the bench's 41k-event world) the
    old statement's OR gets a sequential scan of refunds per payment: this test fails with
    it (checked when it was written)."""
    rng = random.Random(11)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        for table in ("payments", "refunds", "charges", "credit_notes"):
            conn.execute(f"ALTER TABLE ledger.{table} SET (autovacuum_enabled = false)")
        _world(conn, rng, 160)
        never = conn.execute(
            "SELECT bool_and(reltuples < 0) FROM pg_class WHERE oid IN"
            " ('ledger.refunds'::regclass, 'ledger.charges'::regclass)"
        ).fetchone()
        assert never == (True,)
        picked = conn.execute(
            "SELECT invoice_id, payment_intent_id, invoice_charge_id FROM ledger.payments"
            " ORDER BY invoice_id LIMIT 200"
        ).fetchall()
        params = ([r[0] for r in picked], [r[1] for r in picked if r[1]],
                  [r[2] for r in picked if r[2]])
        with conn.transaction(force_rollback=True):
            row = conn.execute(
                "EXPLAIN (FORMAT JSON) "  # type: ignore[arg-type]
                + PAYMENTS_REFRESH.format(s="ledger", keys=_PAYMENT_KEYS.replace("%b", "%s")),
                params,
            ).fetchone()
        assert row is not None
        plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
        scanned = _seq_scans(plan[0]["Plan"])
        assert "refunds" not in scanned and "charges" not in scanned, scanned


def test_refund_totals_alone_refresh_no_invoice_rows(database_url: str) -> None:
    """query_on_payments (0020): PAYMENTS_REFRESH's four columns (refund and credit totals,
    which the invoice list does not read) changing refreshes no invoice row (query_lock, which
    only a refresh with ids reaches, is not called; fails with the old trigger: checked); a
    column the list reads (status) refreshes; the invoice rows and VerifyLedger's check equal
    the rebuild afterwards."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        _world(conn, random.Random(8), 60, crossed=False)
        calls = (
            "SELECT pg_stat_get_xact_function_calls("
            "'ledger.query_lock(integer, text[])'::regprocedure)"
        )
        conn.execute("SET track_functions = 'pl'")
        with conn.transaction():
            changed = conn.execute(
                PAYMENTS_REFRESH.format(s="ledger", keys="true")  # type: ignore[arg-type]
            ).rowcount
            assert changed > 20
            assert conn.execute(calls).fetchone() in ((None,), (0,))
            conn.execute("UPDATE ledger.payments SET status = 'void' WHERE invoice_id = 'in_0003'")
            assert conn.execute(calls).fetchone() == (1,)
        rows = "SELECT r::text FROM ledger.query_invoice_rows r ORDER BY r.row_id"
        live = conn.execute(rows).fetchall()
        assert any("void" in str(r[0]) for r in live)

    async def verify() -> VerifyReport:
        report = VerifyReport()
        aconn = await psycopg.AsyncConnection.connect(libpq_url(database_url))
        async with aconn, aconn.transaction():
            await verify_query_tables(aconn, report, sample_size=5)
        return report

    report = asyncio.run(verify())
    assert report.mismatches == 0, report.sample
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("SELECT ledger.query_support_rebuild()")
        assert conn.execute(rows).fetchall() == live
