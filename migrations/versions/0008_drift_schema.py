"""drift schema (issue 8).

Revision ID: 0008_drift_schema
Revises: 0007_ledger_money_rules
"""

from __future__ import annotations

revision = "0008_drift_schema"
down_revision = "0007_ledger_money_rules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet: the revision is reserved so parallel work keeps one linear history."""


def downgrade() -> None:
    """Nothing to undo."""
