"""The archive writers keep their connections between group commits (issue 12); a connection
that breaks serves no further batch: the webhook it failed gets 503, the next ones 200."""

from __future__ import annotations

import pytest

from tests.helpers import query
from tests.ingest.conftest import WebhookClient, event_body

pytestmark = pytest.mark.integration

TERMINATE_OTHERS = (
    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()) AS ended"
)


async def test_a_broken_writer_connection_is_replaced(
    webhooks: WebhookClient, database_url: str
) -> None:
    assert (await webhooks.post(event_body("evt_conn_before")))[0] == 200
    assert query(database_url, TERMINATE_OTHERS)[0][0] >= 1  # the writers' held connections
    statuses = []
    for attempt in range(6):
        status, answer = await webhooks.post(event_body(f"evt_conn_after_{attempt}"))
        assert status in (200, 503), answer
        statuses.append(status)
    # Each writer fails at most once on its dead connection, then commits on a new one.
    assert statuses.count(503) <= 2, statuses
    assert statuses[-3:] == [200, 200, 200], statuses
    archived = {row[0] for row in query(database_url, "SELECT event_id FROM ingest.stripe_events")}
    assert {f"evt_conn_after_{n}" for n in range(6) if statuses[n] == 200} <= archived
