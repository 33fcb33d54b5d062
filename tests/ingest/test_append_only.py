"""The archive's append-only guarantees after migration 0018, which runs the guard only where
it can refuse (the published_at stamp no longer calls it): every way around it we could think
of is still refused, the stamp still works once, and the stamp calls no trigger function."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command
from psycopg import sql

from services.common.config import libpq_url
from services.common.migrate import alembic_config, upgrade_to_head
from services.ingest.publisher import STAMP_SQL
from tests.helpers import query
from tests.servers import PostgresHandle, unique_name

pytestmark = pytest.mark.integration

# Each archived column with a value different from the one archive() below stores.
CHANGES = {
    "archive_seq": "archive_seq + 1000",
    "event_id": "'evt_other'",
    "event_type": "'invoice.paid'",
    "api_version": "'2099-01-01'",
    "stripe_created_at": "stripe_created_at + interval '1 second'",
    "livemode": "NOT livemode",
    "account": "'acct_other'",
    "payload": "payload || 'x'::bytea",
    "payload_sha256": "decode(repeat('00', 32), 'hex')",
    "received_at": "received_at - interval '1 day'",
    "recovery_source": "'events_list'",
    "recovered_at": "now()",
}


def archive(url: str, event_id: str = "evt_guarded", customer: str | None = None) -> bytes:
    """One archived row, as the ingest writes it (payload large enough to be compressed)."""
    payload = json.dumps(
        {"id": event_id, "object": "event", "type": "customer.created", "pad": "p" * 4000}
    ).encode()
    query(
        url,
        "INSERT INTO ingest.stripe_events (event_id, event_type, stripe_created_at, livemode,"
        " payload, payload_sha256, recovery_source, stripe_customer_id)"
        " VALUES (%s, 'customer.created', now(), false, %s, %s, 'webhook', %s)",
        (event_id, payload, hashlib.sha256(payload).digest(), customer),
    )
    return payload


def stamp(url: str, event_id: str = "evt_guarded") -> None:
    """The publisher's statement (services/ingest/publisher.py ``STAMP_SQL``)."""
    query(url, STAMP_SQL, (datetime.now(UTC), [event_id]))


def refused(url: str, statement: str | sql.Composable, params: tuple[object, ...] = ()) -> None:
    with (
        psycopg.connect(libpq_url(url), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement, params)  # type: ignore[arg-type]


def row(url: str) -> tuple[object, ...]:
    (only,) = query(url, "SELECT * FROM ingest.stripe_events")
    return only


@pytest.mark.parametrize("column", sorted(CHANGES))
@pytest.mark.parametrize("published", [False, True], ids=["unpublished", "published"])
def test_every_archived_column_is_refused(database_url: str, column: str, published: bool):
    archive(database_url)
    if published:
        stamp(database_url)
    before = row(database_url)
    name, change = sql.Identifier(column), sql.SQL(CHANGES[column])  # constants above
    refused(database_url, sql.SQL("UPDATE ingest.stripe_events SET {} = {}").format(name, change))
    # In the same statement as a stamp (the stamp alone would be allowed when unpublished).
    refused(
        database_url,
        sql.SQL(
            "UPDATE ingest.stripe_events SET published_at = coalesce(published_at, now()), {} = {}"
        ).format(name, change),
    )
    # As a row constructor over a sub-select.
    refused(
        database_url,
        sql.SQL(
            "UPDATE ingest.stripe_events SET ({}, published_at)"
            " = (SELECT {}, coalesce(published_at, now()))"
        ).format(name, change),
    )
    assert row(database_url) == before


def test_payload_change_through_upsert_merge_and_a_view(database_url: str) -> None:
    payload = archive(database_url)
    other = payload + b" "
    refused(
        database_url,
        "INSERT INTO ingest.stripe_events (event_id, event_type, stripe_created_at, livemode,"
        " payload, payload_sha256, recovery_source) VALUES ('evt_guarded', 'customer.created',"
        " now(), false, %s, decode(repeat('00', 32), 'hex'), 'webhook')"
        " ON CONFLICT (event_id) DO UPDATE SET payload = EXCLUDED.payload,"
        " published_at = now()",
        (other,),
    )
    refused(
        database_url,
        "MERGE INTO ingest.stripe_events e USING (SELECT 'evt_guarded' AS id) s"
        " ON e.event_id = s.id WHEN MATCHED THEN UPDATE SET payload = 'x'::bytea",
    )
    refused(
        database_url,
        "MERGE INTO ingest.stripe_events e USING (SELECT 'evt_guarded' AS id) s"
        " ON e.event_id = s.id WHEN MATCHED THEN DELETE",
    )
    query(database_url, "CREATE VIEW public.archive_view AS SELECT * FROM ingest.stripe_events")
    refused(database_url, "UPDATE public.archive_view SET payload = 'x'::bytea")
    refused(database_url, "DELETE FROM public.archive_view")
    assert query(database_url, "SELECT payload FROM ingest.stripe_events") == [(payload,)]


def test_published_at_goes_from_null_to_a_time_once(database_url: str) -> None:
    archive(database_url)
    query(database_url, "UPDATE ingest.stripe_events SET published_at = NULL")  # NULL -> NULL
    stamp(database_url)
    ((published_at,),) = query(database_url, "SELECT published_at FROM ingest.stripe_events")
    assert published_at is not None
    refused(database_url, "UPDATE ingest.stripe_events SET published_at = now() + interval '1 s'")
    refused(database_url, "UPDATE ingest.stripe_events SET published_at = NULL")  # un-stamp
    refused(
        database_url,
        "INSERT INTO ingest.stripe_events (event_id, event_type, stripe_created_at, livemode,"
        " payload, payload_sha256, recovery_source) SELECT event_id, event_type,"
        " stripe_created_at, livemode, payload, payload_sha256, recovery_source"
        " FROM ingest.stripe_events ON CONFLICT (event_id) DO UPDATE SET published_at = NULL",
    )
    # The publisher's statement again (a republish): matches nothing, refuses nothing.
    stamp(database_url)
    # The same value is not a change (as before 0018).
    query(database_url, "UPDATE ingest.stripe_events SET published_at = published_at")
    assert query(database_url, "SELECT published_at FROM ingest.stripe_events") == [
        (published_at,)
    ]


def test_customer_goes_from_null_to_a_value_once(database_url: str) -> None:
    archive(database_url)
    query(database_url, "UPDATE ingest.stripe_events SET stripe_customer_id = 'cus_a'")
    refused(database_url, "UPDATE ingest.stripe_events SET stripe_customer_id = 'cus_b'")
    refused(database_url, "UPDATE ingest.stripe_events SET stripe_customer_id = NULL")
    assert query(database_url, "SELECT stripe_customer_id FROM ingest.stripe_events") == [
        ("cus_a",)
    ]


def test_delete_and_truncate_are_refused(database_url: str) -> None:
    archive(database_url)
    stamp(database_url)
    for statement in (
        "DELETE FROM ingest.stripe_events",
        "DELETE FROM ingest.stripe_events WHERE published_at IS NOT NULL",
        "TRUNCATE ingest.stripe_events",
        "TRUNCATE ONLY ingest.stripe_events",
        "TRUNCATE ingest.stripe_events RESTART IDENTITY CASCADE",
    ):
        refused(database_url, statement)
    assert query(database_url, "SELECT count(*) FROM ingest.stripe_events") == [(1,)]


def test_unchanged_values_pass_as_before(database_url: str) -> None:
    """The guard compares values: naming a column without changing it is not refused (the
    same as the trigger of 0001/0013, which ran on every update)."""
    archive(database_url, customer="cus_a")
    before = row(database_url)
    query(
        database_url,
        "UPDATE ingest.stripe_events SET payload = payload, event_type = event_type,"
        " stripe_customer_id = stripe_customer_id",
    )
    assert row(database_url) == before


def _guard_calls(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    (calls,) = conn.execute(
        "SELECT coalesce(pg_stat_get_xact_function_calls("
        "'ingest.stripe_events_guard'::regproc), 0)"
    ).fetchone() or (0,)
    return int(calls)  # type: ignore[call-overload]


def test_the_stamp_calls_no_trigger_function(database_url: str) -> None:
    """What 0018 is for: the stamp must not run the guard (which reads the payload); a
    refused change still does. Counted by PostgreSQL in this transaction (track_functions)."""
    archive(database_url, "evt_a")
    archive(database_url, "evt_b", customer="cus_b")
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("SET LOCAL track_functions = 'pl'")
        conn.execute(
            "UPDATE ingest.stripe_events SET published_at = now()"
            " WHERE event_id = ANY(%s) AND published_at IS NULL",
            (["evt_a", "evt_b"],),
        )
        conn.execute(
            "UPDATE ingest.stripe_events SET stripe_customer_id = 'cus_a'"
            " WHERE event_id = 'evt_a'"
        )
        assert _guard_calls(conn) == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE ingest.stripe_events SET published_at = NULL")


def test_downgrade_restores_the_guard_on_every_update(pg: PostgresHandle) -> None:
    url = pg.create_database(unique_name("guard"))
    upgrade_to_head(url)
    config = alembic_config(url)
    command.downgrade(config, "0018_ingest_stamp-1")  # whatever precedes it
    archive(url)
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("SET LOCAL track_functions = 'pl'")
        conn.execute("UPDATE ingest.stripe_events SET published_at = now()")
        assert _guard_calls(conn) == 1  # the trigger of 0001/0013: on every row update
    refused(url, "UPDATE ingest.stripe_events SET published_at = NULL")
    refused(url, "UPDATE ingest.stripe_events SET payload = 'x'::bytea")
    assert query(
        url,
        "SELECT attstorage FROM pg_attribute"
        " WHERE attrelid = 'ingest.stripe_events'::regclass AND attname = 'payload'",
    ) == [("x",)]
    upgrade_to_head(url)
    refused(url, "UPDATE ingest.stripe_events SET payload = 'x'::bytea")
    refused(url, "DELETE FROM ingest.stripe_events")


def test_payload_is_stored_uncompressed(database_url: str) -> None:
    """0018: new payloads skip pglz (its CPU was on every webhook's path); a large one goes
    out of line as it is, and reads back byte for byte."""
    payload = archive(database_url)  # ~4 KB of very compressible JSON
    assert query(
        database_url,
        "SELECT pg_column_compression(payload), payload FROM ingest.stripe_events",
    ) == [(None, payload)]
    assert query(
        database_url,
        "SELECT attstorage FROM pg_attribute"
        " WHERE attrelid = 'ingest.stripe_events'::regclass AND attname = 'payload'",
    ) == [("e",)]
