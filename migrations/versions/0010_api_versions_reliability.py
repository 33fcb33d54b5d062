"""ledger: Stripe API version families (issue 7).

Revision ID: 0010_api_versions_reliability
Revises: 0009_gateway_schema
"""

from __future__ import annotations

revision = "0010_api_versions_reliability"
down_revision = "0009_gateway_schema"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet: the revision is reserved so parallel work keeps one linear history."""


def downgrade() -> None:
    """Nothing to undo."""
