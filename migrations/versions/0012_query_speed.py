"""ledger schema: back-office query speed (issue 9's 150 ms p95, issue 12 goal 4).

Revision ID: 0012_query_speed
Revises: 0011_reliability
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from sqlalchemy import text

revision = "0012_query_speed"
down_revision = "0011_reliability"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# The account search is ``name ILIKE '%q%' OR email ILIKE '%q%' OR account_id ILIKE '%q%'``
# over the live accounts: a substring match no b-tree can serve, so it was a scan of every
# account (185 ms p95 at 50,000 accounts through the gateway). pg_trgm's GIN operator class
# answers ILIKE with a leading wildcard from the trigrams of the pattern (three bitmap index
# scans OR-ed together); the partial predicate is the list's own "live account" filter.
#
# pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it without
# superuser rights; the PyPI embedded PostgreSQL and the postgres images ship it. It goes into
# a schema of its own, ``trgm``: not ``ledger`` (whose functions are exactly those of
# migrations/sql/ledger_functions.sql) and not ``public`` (not writable by every owner since
# PostgreSQL 15). When it is already installed (in whatever schema), that copy is used. Its
# schema is named in the operator class, so the indexes never depend on the search_path; the
# ILIKE operator itself is built in.
_TRGM_COLUMNS = ("name", "email", "account_id")

# The dashboard's MRR movements grouped every query_mrr_steps row of the period and the prior one
# (100,000 rows for 90 days at the bench size: 180 ms). query_mrr_moves_daily holds, per UTC day
# and currency, the same-currency committed-MRR changes of query_mrr_steps counted by their SHAPE:
# the signs of the MRR before and after, whether it rose, had_mrr_before and whether the step is a
# SubscriptionReactivated, with the number of steps and the sum of (after - before). The movement
# category is a function of exactly that shape (services.ledger.domain.movements.mrr_movement,
# which stays the one home of the rule: the query classifies one representative per shape, and a
# test checks the rule depends on nothing else), and a category's amount is the sum of its steps'
# deltas, so the totals equal the per-step ones to the cent. Steps whose currency changed are
# compared in platform units at query time (the rate is the query's), so they stay in
# query_mrr_steps, reached through a partial covering index (covering, or the planner prefers the
# full day index). query_refresh_mrr moves the table by (new - old) with the daily deltas, the
# rebuild empties it first, and VerifyLedger diffs it against a rebuild like every query_* table.
# A shape whose count returns to 0 is no row (like query_mrr_daily's zero days).
TABLES_SQL = """
CREATE TABLE ledger.query_mrr_moves_daily (
    day date NOT NULL,
    currency text NOT NULL,
    prev_sign smallint NOT NULL,
    sign smallint NOT NULL,
    rising boolean NOT NULL,
    had_mrr_before boolean NOT NULL,
    reactivated boolean NOT NULL,
    n bigint NOT NULL,
    amount bigint NOT NULL,
    PRIMARY KEY (day, currency, prev_sign, sign, rising, had_mrr_before, reactivated)
);
CREATE INDEX query_mrr_moves_daily_zero ON ledger.query_mrr_moves_daily (day) WHERE n = 0;
CREATE INDEX query_mrr_steps_currency_change ON ledger.query_mrr_steps (day)
    INCLUDE (currency, prev_currency, committed, prev_committed, had_mrr_before, event_type)
    WHERE prev_currency IS NOT NULL AND currency IS DISTINCT FROM prev_currency;

INSERT INTO ledger.query_mrr_moves_daily (day, currency, prev_sign, sign, rising,
    had_mrr_before, reactivated, n, amount)
SELECT day, currency, sign(prev_committed)::smallint, sign(committed)::smallint,
       committed > prev_committed, had_mrr_before, event_type = 'SubscriptionReactivated',
       count(*), sum(committed - prev_committed)
FROM ledger.query_mrr_steps
WHERE currency IS NOT NULL AND (prev_currency IS NULL OR prev_currency = currency)
  AND committed <> prev_committed
GROUP BY 1, 2, 3, 4, 5, 6, 7;
"""

# The dashboard's account figures (KPI counts, signups per day, plan distribution) were three
# aggregates over every live account per request, growing with the accounts (80 ms of a 90-day
# dashboard at 50,000 accounts on a loaded machine). query_account_mix holds the live accounts
# counted per (UTC creation day, plan, currency) with their summed committed MRR: every one of
# those figures is a sum over a day range of it (the period bounds are whole UTC days), and its
# size grows with days x plans x currencies, not with accounts. An unknown creation day is
# '-infinity' (the lists count such accounts as created before any period) and no currency ''
# (currencies are three letters). query_refresh_accounts moves it by (new - old) through
# query_move_account_mix; zero rows are removed; the rebuild empties it first; VerifyLedger
# diffs it like every query_* table.
MIX_SQL = """
CREATE TABLE ledger.query_account_mix (
    created_day date NOT NULL,
    plan text NOT NULL,
    currency text NOT NULL,
    n bigint NOT NULL,
    committed_mrr bigint NOT NULL,
    PRIMARY KEY (created_day, plan, currency)
);
CREATE INDEX query_account_mix_zero ON ledger.query_account_mix (created_day) WHERE n = 0;

INSERT INTO ledger.query_account_mix (created_day, plan, currency, n, committed_mrr)
SELECT COALESCE(ledger.query_day(created_at), '-infinity'), plan, COALESCE(currency, ''),
       count(*), sum(committed_mrr)
FROM ledger.query_accounts WHERE deleted_at IS NULL
GROUP BY 1, 2, 3;
"""

# Frozen copies (see 0007): the functions as 0012 leaves them, and as 0011 had them.
FUNCTIONS_SQL = Path(__file__).with_name("0012_functions.sql").read_text(encoding="utf-8")
DOWNGRADE_SQL = Path(__file__).with_name("0012_downgrade_functions.sql").read_text(encoding="utf-8")


def _trgm_schema() -> str:
    bind = op.get_bind()
    found = bind.execute(
        text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'pg_trgm'"
        )
    ).scalar()
    if found is None:
        op.execute("CREATE SCHEMA IF NOT EXISTS trgm")
        op.execute("CREATE EXTENSION pg_trgm WITH SCHEMA trgm")
        return "trgm"
    return str(found)


def upgrade() -> None:
    schema = _trgm_schema()
    for column in _TRGM_COLUMNS:
        op.execute(
            f"CREATE INDEX query_accounts_{column}_trgm ON ledger.query_accounts"
            f' USING gin ({column} "{schema}".gin_trgm_ops) WHERE deleted_at IS NULL'
        )
    op.execute(TABLES_SQL)
    op.execute(MIX_SQL)
    op.execute(FUNCTIONS_SQL)


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
    op.execute("DROP FUNCTION ledger.query_move_account_mix(text[], integer)")
    op.execute("DROP TABLE ledger.query_account_mix")
    op.execute("DROP INDEX ledger.query_mrr_steps_currency_change")
    op.execute("DROP TABLE ledger.query_mrr_moves_daily")
    for column in _TRGM_COLUMNS:
        op.execute(f"DROP INDEX ledger.query_accounts_{column}_trgm")
    # Only the copy this revision created (in its trgm schema) is removed; one installed
    # before it belongs to someone else.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_extension e"
        " JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'pg_trgm' AND n.nspname = 'trgm')"
        " THEN DROP EXTENSION pg_trgm; END IF; END $$"
    )
    op.execute("DROP SCHEMA IF EXISTS trgm")
