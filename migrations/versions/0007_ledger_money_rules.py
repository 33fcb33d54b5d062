"""ledger schema: money rules (issue 6).

Revision ID: 0007_ledger_money_rules
Revises: 0006_faster_query_triggers
"""

from __future__ import annotations

revision = "0007_ledger_money_rules"
down_revision = "0006_faster_query_triggers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet: the revision is reserved so parallel work keeps one linear history."""


def downgrade() -> None:
    """Nothing to undo."""
