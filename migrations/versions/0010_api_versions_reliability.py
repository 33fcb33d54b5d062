"""ledger: Stripe API version families (issue 7): a severity on unsupported-version records.

``ledger.unsupported_events`` now records two kinds of API-version trouble, both reported by
drift as ``UnsupportedStripeApiVersion``:

* ``severity = 'Critical'`` (the default, and every row written before this revision): no
  resolver accepts the version; the event is archived but not classified (no billing row).
* ``severity = 'Warning'``: the version is newer than every known family; the event *was*
  classified with the newest family's resolver (``resolved_family``) and its billing row is
  flagged ``api_version_newer_than_known``. An operator should check Stripe's changelog and
  add a resolver.

Revision ID: 0010_api_versions_reliability
Revises: 0009_gateway_schema
"""

from __future__ import annotations

from alembic import op

revision = "0010_api_versions_reliability"
down_revision = "0009_gateway_schema"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE ledger.unsupported_events
            ADD COLUMN severity text NOT NULL DEFAULT 'Critical'
                CONSTRAINT unsupported_events_severity CHECK (severity IN ('Warning', 'Critical')),
            ADD COLUMN resolved_family text;
        CREATE INDEX unsupported_events_severity_time
            ON ledger.unsupported_events (severity, occurred_at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX ledger.unsupported_events_severity_time;
        ALTER TABLE ledger.unsupported_events
            DROP COLUMN resolved_family,
            DROP COLUMN severity;
        """
    )
