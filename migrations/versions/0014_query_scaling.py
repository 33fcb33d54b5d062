"""ledger schema: back-office queries that do not grow with the accounts (issue 12 goal 4).

Revision ID: 0014_query_scaling
Revises: 0013_gateway_gaps
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0014_query_scaling"
down_revision = "0013_gateway_gaps"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# After 0012 the queries whose cost still grew with the accounts were counts: the dashboard's
# active users (one multirange per user), the account lists' exact count(*) of the matches,
# the invoice list's total and CheckMrrConsistency's KPI side (a sum over every
# subscription), plus the MRR sort (an expression of the query's exchange rates no index
# holds). Each count becomes a maintained counter, kept by the same triggers as the other
# query_* tables, emptied and refilled by query_support_rebuild() and so diffed by
# VerifyLedger; each read is a sum over a table bounded by days, plans, statuses or
# currencies, not by accounts.
#
# * query_login_users: per user, the login days that count (login tenant none or not
#   deleted; user listed by the directory's rule). query_login_pairs: per (day, previous
#   counted day of the same user) the number of users: a user is active in [a, b) exactly
#   when one of its days d in [a, b) has its previous day before a ('-infinity' = none), so
#   the active users of a window are a sum over the window's days. Kept by the login,
#   tenant (deleted_at) and membership triggers through query_refresh_login_users, which
#   writes only the difference between a user's old and new pairs.
# * query_account_facets: live accounts per (plan, status, drift_detected, unsynced): the
#   list's total for any filter but a search (a search's count is bounded by the reader).
#   Moved by query_refresh_accounts around its rewrite, like query_account_mix.
# * query_invoice_daily: invoice-list rows per (UTC day, kind), moved by
#   query_refresh_invoices; a period's total = whole days from here + its partial edge days
#   counted on the row_at index (as query_event_daily does for the event list).
# * query_mrr_totals: per currency, the subscriptions and their summed committed MRR (the
#   KPI side of CheckMrrConsistency), kept by a statement trigger on subscriptions that a
#   bulk replay defers like the others (0006).
# * MRR sort: within one currency the platform MRR is committed_mrr times a positive factor,
#   so the reader merges per-currency walks of (currency, committed_mrr, account_id); the
#   accounts without a converted MRR (no currency, or no rate) come last, by account id
#   within their currency: (currency, account_id). Partial indexes on the rare flags
#   (drift_detected, unsynced) let those filters find their accounts without a walk.
# * Descending pages: the lists order NULLS LAST both ways; the keys that can be NULL
#   (created_at, renewal_at) get a DESC NULLS LAST twin of their index so a descending page is
#   an index walk, not a sort of every live account (name, plan and status are never NULL
#   and are ordered without NULLS LAST by the reader).
# * The directory's "listed user" rule starts from the deleted tenants (a few hundred of
#   26,000 at the bench size, read by a seq scan of every tenant per dashboard until now):
#   a partial index on them.
TABLES_SQL = """
CREATE TABLE ledger.query_login_users (
    user_id text PRIMARY KEY,
    days datemultirange NOT NULL
);
CREATE TABLE ledger.query_login_pairs (
    day date NOT NULL,
    prev_day date NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (day, prev_day)
);
CREATE INDEX query_login_pairs_zero ON ledger.query_login_pairs (day) WHERE n = 0;
CREATE INDEX query_login_days_tenant ON ledger.query_login_days (tenant_key)
    WHERE tenant_key <> '';

CREATE TABLE ledger.query_account_facets (
    plan text NOT NULL,
    status text NOT NULL,
    drift_detected boolean NOT NULL,
    unsynced boolean NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (plan, status, drift_detected, unsynced)
);
INSERT INTO ledger.query_account_facets (plan, status, drift_detected, unsynced, n)
SELECT plan, status, drift_detected, unsynced, count(*)
FROM ledger.query_accounts WHERE deleted_at IS NULL GROUP BY 1, 2, 3, 4;

CREATE TABLE ledger.query_invoice_daily (
    day date NOT NULL,
    kind text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (day, kind)
);
CREATE INDEX query_invoice_daily_zero ON ledger.query_invoice_daily (day) WHERE n = 0;
INSERT INTO ledger.query_invoice_daily (day, kind, n)
SELECT row_day, kind, count(*) FROM ledger.query_invoice_rows GROUP BY 1, 2;

CREATE TABLE ledger.query_mrr_totals (
    currency text PRIMARY KEY,
    n bigint NOT NULL,
    committed_mrr bigint NOT NULL
);
INSERT INTO ledger.query_mrr_totals (currency, n, committed_mrr)
SELECT currency, count(*), COALESCE(sum(committed_mrr), 0) FROM ledger.subscriptions
WHERE currency IS NOT NULL GROUP BY 1;

CREATE INDEX query_accounts_mrr ON ledger.query_accounts (currency, committed_mrr, account_id)
    WHERE deleted_at IS NULL;
CREATE INDEX query_accounts_currency ON ledger.query_accounts (currency, account_id)
    WHERE deleted_at IS NULL;
CREATE INDEX query_accounts_created_desc ON ledger.query_accounts
    (created_at DESC NULLS LAST, account_id DESC) WHERE deleted_at IS NULL;
CREATE INDEX query_accounts_renewal_desc ON ledger.query_accounts
    (renewal_at DESC NULLS LAST, account_id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tenants_deleted ON ledger.tenants (tenant_id) WHERE deleted_at IS NOT NULL;
CREATE INDEX query_accounts_drift ON ledger.query_accounts (account_id)
    WHERE deleted_at IS NULL AND drift_detected;
CREATE INDEX query_accounts_unsynced ON ledger.query_accounts (account_id)
    WHERE deleted_at IS NULL AND unsynced;
"""

_WHEN = "WHEN (current_setting('ledger.defer_query_support', true) IS DISTINCT FROM 'on')"
_REFERENCING = {
    "insert": "REFERENCING NEW TABLE AS new_rows",
    "update": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "REFERENCING OLD TABLE AS old_rows",
}
# (trigger name prefix, table, function, WHEN): the projection writes subscriptions (so a
# bulk replay may defer that one); memberships are the directory's.
_TRIGGERS = (
    ("query_subscriptions_totals", "subscriptions", "query_on_subscription_totals", _WHEN),
    ("query_memberships", "memberships", "query_on_memberships", ""),
)

FILL_SQL = """
SELECT ledger.query_refresh_login_users(ARRAY(
    SELECT DISTINCT user_id FROM ledger.query_login_days));
"""

# Frozen copies (see 0007): the functions as 0014 leaves them, and as 0013 had them.
FUNCTIONS_SQL = Path(__file__).with_name("0014_functions.sql").read_text(encoding="utf-8")
DOWNGRADE_SQL = Path(__file__).with_name("0014_downgrade_functions.sql").read_text(encoding="utf-8")
_NEW_FUNCTIONS = (
    "query_login_day_pairs(datemultirange)",
    "query_login_user_days(text[])",
    "query_move_account_facets(text[], integer)",
    "query_on_memberships()",
    "query_on_subscription_totals()",
    "query_refresh_login_users(text[])",
)
_NEW_INDEXES = (
    "query_accounts_mrr",
    "query_accounts_currency",
    "query_accounts_created_desc",
    "query_accounts_renewal_desc",
    "query_accounts_drift",
    "query_accounts_unsynced",
    "query_login_days_tenant",
    "tenants_deleted",
)


def upgrade() -> None:
    op.execute(TABLES_SQL)
    op.execute(FUNCTIONS_SQL)
    for prefix, table, function, when in _TRIGGERS:
        for action, referencing in _REFERENCING.items():
            op.execute(
                f"CREATE TRIGGER {prefix}_{action} AFTER {action.upper()} ON ledger.{table}"
                f" {referencing} FOR EACH STATEMENT {when}"
                f" EXECUTE FUNCTION ledger.{function}()"
            )
    op.execute(FILL_SQL)


def downgrade() -> None:
    for prefix, table, _function, _when in _TRIGGERS:
        for action in _REFERENCING:
            op.execute(f"DROP TRIGGER {prefix}_{action} ON ledger.{table}")
    op.execute(DOWNGRADE_SQL)
    for signature in _NEW_FUNCTIONS:
        op.execute(f"DROP FUNCTION ledger.{signature}")
    for index in _NEW_INDEXES:
        op.execute(f"DROP INDEX ledger.{index}")
    op.execute(
        "DROP TABLE ledger.query_login_users, ledger.query_login_pairs,"
        " ledger.query_account_facets, ledger.query_invoice_daily, ledger.query_mrr_totals"
    )
