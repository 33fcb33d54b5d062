"""ingest/ledger: reliability (issue 10).

Revision ID: 0011_reliability
Revises: 0010_api_versions_reliability
"""

from __future__ import annotations

revision = "0011_reliability"
down_revision = "0010_api_versions_reliability"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet: the revision is reserved so parallel work keeps one linear history."""


def downgrade() -> None:
    """Nothing to undo."""
