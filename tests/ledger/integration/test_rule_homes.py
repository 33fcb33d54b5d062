"""Issue 6 section 2: one home for each rule.

* Each rule SQL needs too has one SQL twin (``migrations/sql/ledger_functions.sql``) that gives
  the same answers as its Python home, on the same inputs, on the real PostgreSQL.
* That file is the live text of every function of the ledger schema: running it on a migrated
  database changes nothing, and no function of the schema is missing from it.
* Rows the projection writes are named: every read model's columns, and the billing rows'
  columns, are columns of the table they are written to.
* 0007's downgrade restores 0006's functions, and upgrading again gives the live ones.
"""

from __future__ import annotations

import itertools
import re
from argparse import Namespace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config

from services.common.config import libpq_url
from services.common.migrate import REPO_ROOT
from services.ledger.domain.money import round_half_even
from services.ledger.domain.rules import (
    ACCOUNT_PRECEDENCE,
    ENDED_STATUSES,
    account_id,
    is_cancelling_at,
    is_ended,
)
from services.ledger.tables import BILLING_EVENT_COLUMNS, READ_MODELS, UNSUPPORTED_COLUMNS

pytestmark = pytest.mark.integration

LIVE_FILE = REPO_ROOT / "migrations" / "sql" / "ledger_functions.sql"

#: Every status Stripe documents for a subscription, plus odd values a payload may carry.
STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
    "",
    "CANCELED",
    None,
)


@pytest.fixture
def conn(database_url: str) -> Any:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        yield connection


def _functions(conn: psycopg.Connection[Any]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'ledger'"
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def test_the_sql_file_is_the_live_text_of_every_ledger_function(
    conn: psycopg.Connection[Any],
) -> None:
    before = _functions(conn)
    text = LIVE_FILE.read_text(encoding="utf-8")
    named = set(re.findall(r"CREATE OR REPLACE FUNCTION ledger\.(\w+)\(", text))
    assert named == {signature.split("(")[0].removeprefix("ledger.") for signature in before}
    with conn.transaction(force_rollback=True):
        conn.execute(text)  # type: ignore[arg-type]
        after = _functions(conn)
    assert after == before  # running the live file changes no function


def test_ended_rule_sql_equals_python(conn: psycopg.Connection[Any]) -> None:
    assert frozenset({"canceled", "incomplete_expired"}) == ENDED_STATUSES
    now = datetime(2024, 1, 1, tzinfo=UTC)
    for status, ended_at in itertools.product(STATUSES, (None, now)):
        row = conn.execute("SELECT ledger.is_ended(%s, %s)", (status, ended_at)).fetchone()
        assert row is not None
        assert row[0] is is_ended(status, ended_at), (status, ended_at)


def test_cancelling_rule_sql_equals_python(conn: psycopg.Connection[Any]) -> None:
    end = datetime(2024, 2, 1, tzinfo=UTC)
    moments = (None, end - timedelta(days=1), end, end + timedelta(seconds=1))
    for flag, cancel_at, period_end in itertools.product((None, False, True), moments, (None, end)):
        row = conn.execute(
            "SELECT ledger.is_cancelling(%s, %s, %s)", (flag, cancel_at, period_end)
        ).fetchone()
        assert row is not None
        assert row[0] is is_cancelling_at(flag, cancel_at, period_end), (flag, cancel_at)


def test_account_identity_sql_equals_python(conn: psycopg.Connection[Any]) -> None:
    assert ACCOUNT_PRECEDENCE == ("link", "payload_tenant", "customer_tenant", "customer")
    values = (None, "", "x")
    for combo in itertools.product(values, repeat=4):
        labelled = tuple(f"{v}{i}" if v else v for i, v in enumerate(combo))
        row = conn.execute("SELECT ledger.account_id(%s, %s, %s, %s)", labelled).fetchone()
        assert row is not None
        assert row[0] == account_id(*labelled), labelled


def test_money_rounding_sql_equals_python(conn: psycopg.Connection[Any]) -> None:
    pairs = [(n, d) for d in (1, 2, 3, 4, 7, 10, 100, -2, -3) for n in range(-25, 26)]
    pairs += [(5, 2), (7, 2), (-5, 2), (-7, 2), (2**63 - 1, 2), (10**17 + 5, 10), (1199, 1)]
    rows = conn.execute(
        "SELECT ledger.round_half_even(n, d) FROM unnest(%s::numeric[], %s::numeric[]) AS x(n, d)",
        ([n for n, _ in pairs], [d for _, d in pairs]),
    ).fetchall()
    for (n, d), (sql,) in zip(pairs, rows, strict=True):
        assert sql == round_half_even(Fraction(n, d)), (n, d)
    # the rule itself: half to even, never half away from zero
    assert [round_half_even(Fraction(n, 2)) for n in (1, 3, 5, -1, -3)] == [0, 2, 2, 0, -2]


def test_named_rows_match_their_tables(conn: psycopg.Connection[Any]) -> None:
    def columns(table: str) -> set[str]:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'ledger' AND table_name = %s",
            (table,),
        ).fetchall()
        return {str(r[0]) for r in rows}

    for spec in READ_MODELS:
        live = columns(spec.name)
        assert set(spec.columns) | set(spec.derived) == live, spec.name
        assert len(set(spec.columns)) == len(spec.columns), spec.name
    assert set(BILLING_EVENT_COLUMNS) <= columns("billing_events")
    assert set(UNSUPPORTED_COLUMNS) <= columns("unsupported_events")


def test_0007_downgrades_to_0006_functions_and_back(database_url: str) -> None:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.cmd_opts = Namespace(x=[f"url={database_url}"])
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        head = _functions(conn)
        command.downgrade(config, "0006_faster_query_triggers")
        at_0006 = _functions(conn)
        assert "ledger.is_ended(text,timestamp with time zone)" not in at_0006
        assert not conn.execute("SELECT to_regclass('ledger.charges')").fetchone()[0]  # type: ignore[index]
        command.upgrade(config, "head")
        assert _functions(conn) == head
