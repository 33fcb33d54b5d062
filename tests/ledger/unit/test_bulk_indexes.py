"""The recorded index definitions a bulk replay executes to rebuild its indexes: only an
index of the recorded table is accepted, and the rebuild is idempotent (IF NOT EXISTS)."""

from __future__ import annotations

import pytest
from psycopg import sql

from services.ledger.bulk_indexes import BULK_TABLES, _if_not_exists
from services.ledger.tables import READ_MODELS


def _text(statement: sql.SQL) -> str:
    return statement.as_string(None)


def test_a_recorded_definition_is_rebuilt_only_if_missing() -> None:
    definition = (
        "CREATE INDEX billing_events_time ON ledger.billing_events USING btree"
        " (occurred_at, stripe_event_id)"
    )
    assert _text(_if_not_exists(definition, "ledger", "billing_events")) == (
        "CREATE INDEX IF NOT EXISTS billing_events_time ON ledger.billing_events USING btree"
        " (occurred_at, stripe_event_id)"
    )


def test_partial_and_expression_indexes_keep_their_text() -> None:
    definition = (
        "CREATE INDEX accounts_live_name ON ledger.accounts USING btree (name)"
        " WHERE (deleted_at IS NULL)"
    )
    assert _text(_if_not_exists(definition, "ledger", "accounts")).endswith(
        "ON ledger.accounts USING btree (name) WHERE (deleted_at IS NULL)"
    )


@pytest.mark.parametrize(
    "definition",
    [
        "CREATE INDEX x ON ledger.accounts USING btree (name)",  # another table
        "CREATE INDEX x ON other.billing_events USING btree (id)",  # another schema
        "CREATE UNIQUE INDEX x ON ledger.billing_events USING btree (id)",  # never dropped
        "DROP TABLE ledger.billing_events",
        "CREATE INDEX x ON ledger.billing_events USING btree (id); DROP TABLE ledger.payments",
        "",
    ],
)
def test_anything_else_in_a_record_is_refused(definition: str) -> None:
    with pytest.raises(ValueError, match="not an index definition"):
        _if_not_exists(definition, "ledger", "billing_events")


def test_the_bulk_tables_are_the_tables_a_replay_writes() -> None:
    assert (
        "billing_events",
        "unsupported_events",
        *(model.name for model in READ_MODELS),
    ) == BULK_TABLES
