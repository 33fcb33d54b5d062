"""gateway schema: operators, sessions, API tokens, audit log (issue 9).

Revision ID: 0009_gateway_schema
Revises: 0008_drift_schema
"""

from __future__ import annotations

revision = "0009_gateway_schema"
down_revision = "0008_drift_schema"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet: the revision is reserved so parallel work keeps one linear history."""


def downgrade() -> None:
    """Nothing to undo."""
