"""ledger schema: the query_* triggers can be deferred by a bulk replay (one rebuild at the end).

Revision ID: 0006_faster_query_triggers
Revises: 0005_customer_links
"""

from __future__ import annotations

from alembic import op

revision = "0006_faster_query_triggers"
down_revision = "0005_customer_links"
branch_labels = None
depends_on = None

# Written out (not generated from code) so this revision never changes under later edits.
#
# The statement-level triggers of 0004 refresh the query_* tables for the keys each statement
# touched. During a replay into an empty ledger that is most of the replay's cost (the same
# accounts, subscriptions and invoices are refreshed batch after batch), while one
# ``ledger.query_support_rebuild()`` at the end gives the same rows (the query tables are a pure
# function of the source tables) in a fraction of the time.
#
# So the triggers the projection fires get a WHEN condition: they are skipped in a transaction
# that has set ``ledger.defer_query_support = 'on'`` (``SET LOCAL``; no other session is
# affected, every other writer keeps the incremental maintenance). The function bodies are
# unchanged (0004 / 0005 own them). A transaction that defers must first make sure a row exists
# in ``ledger.query_support_deferred``: it is removed in the transaction that runs the rebuild,
# so a replay that dies half-way leaves the marker behind and the next replay (which sees it)
# defers and rebuilds too; ``query_support_rebuild()`` by hand also clears the situation.
# Triggers of tables a replay never writes (tenants, logins, customer_links) are not touched.
TABLES_SQL = """
CREATE TABLE ledger.query_support_deferred (
    id boolean PRIMARY KEY DEFAULT true CONSTRAINT query_support_deferred_single CHECK (id),
    since timestamptz NOT NULL DEFAULT now()
);
"""

_WHEN = "WHEN (current_setting('ledger.defer_query_support', true) IS DISTINCT FROM 'on')"

# (table, function, operations) of the 0004 triggers the projection can fire.
_TRIGGERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("billing_events", "query_on_billing_events", ("insert",)),
    ("accounts", "query_on_accounts", ("insert", "update", "delete")),
    ("subscriptions", "query_on_subscriptions", ("insert", "update", "delete")),
    ("payments", "query_on_payments", ("insert", "update", "delete")),
    ("credit_notes", "query_on_credit_notes", ("insert", "update", "delete")),
    ("refunds", "query_on_refunds", ("insert", "update", "delete")),
)
_REFERENCING = {
    "insert": "REFERENCING NEW TABLE AS new_rows",
    "update": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "REFERENCING OLD TABLE AS old_rows",
}


def _create(table: str, function: str, action: str, when: str) -> str:
    return (
        f"CREATE TRIGGER query_{table}_{action} AFTER {action.upper()} ON ledger.{table}"
        f" {_REFERENCING[action]} FOR EACH STATEMENT {when}"
        f" EXECUTE FUNCTION ledger.{function}();"
    )


def _recreate(when: str) -> None:
    for table, function, actions in _TRIGGERS:
        for action in actions:
            op.execute(f"DROP TRIGGER query_{table}_{action} ON ledger.{table}")
            op.execute(_create(table, function, action, when))


def upgrade() -> None:
    op.execute(TABLES_SQL)
    _recreate(_WHEN)


def downgrade() -> None:
    _recreate("")
    op.execute("DROP TABLE ledger.query_support_deferred")
    op.execute("SELECT ledger.query_support_rebuild()")
