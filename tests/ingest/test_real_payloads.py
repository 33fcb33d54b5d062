"""Every real Stripe payload under $STRIPE_FIXTURES_DIR goes through the real endpoint.

Public test suites reuse event ids (see ../shared/fixtures/README.md), so the first test gives
each file an id of its own, derived from its path, and checks the archive row of every file.
The second posts the files untouched into one archive: a repeated id with other bytes is then
exactly the divergence case, and the test checks it is handled as such.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import fixtures_dir
from tests.helpers import query
from tests.ingest.conftest import WebhookClient

pytestmark = pytest.mark.integration


def fixture_files() -> list[Path]:
    files = sorted(fixtures_dir().rglob("*.json"))
    assert files, f"no fixtures found under {fixtures_dir()}"
    return files


def with_own_id(path: Path) -> tuple[str, bytes]:
    """The file's bytes with its envelope id replaced by one derived from its path."""
    raw = path.read_bytes()
    old_id = json.loads(raw)["id"]
    new_id = (
        "evt_fx_" + hashlib.sha256(str(path.relative_to(fixtures_dir())).encode()).hexdigest()[:24]
    )
    body = raw.replace(json.dumps(old_id).encode(), json.dumps(new_id).encode())
    reverted = json.loads(body)
    assert reverted["id"] == new_id
    reverted["id"] = old_id
    assert reverted == json.loads(raw), f"{path}: id replacement touched more than the id"
    return new_id, body


async def test_every_real_payload_is_archived(webhooks: WebhookClient, database_url: str):
    expected: dict[str, tuple[str, str | None, bytes]] = {}
    for path in fixture_files():
        event_id, body = with_own_id(path)
        status, answer = await webhooks.post(body)
        assert (status, answer["outcome"]) == (200, "archived"), path
        document = json.loads(body)
        expected[event_id] = (document["type"], document.get("api_version"), body)
    rows = query(
        database_url,
        "SELECT event_id, event_type, api_version, payload, payload_sha256"
        " FROM ingest.stripe_events",
    )
    assert len(rows) == len(expected)
    for event_id, event_type, api_version, payload, sha in rows:
        want_type, want_version, body = expected[event_id]
        assert (event_type, api_version) == (want_type, want_version)
        assert bytes(payload) == body
        assert bytes(sha) == hashlib.sha256(body).digest()


async def test_reused_ids_across_files_become_divergences(
    webhooks: WebhookClient, database_url: str
):
    first_body: dict[str, bytes] = {}
    divergent: set[tuple[str, bytes]] = set()
    for path in fixture_files():
        raw = path.read_bytes()
        event_id = json.loads(raw)["id"]
        status, answer = await webhooks.post(raw)
        assert status == 200, path
        if event_id not in first_body:
            first_body[event_id] = raw
            assert answer["outcome"] == "archived", path
        elif raw == first_body[event_id]:
            assert answer["outcome"] == "duplicate", path
        else:
            assert answer["outcome"] == "divergent", path
            divergent.add((event_id, hashlib.sha256(raw).digest()))
    stored = {
        r[0]: bytes(r[1])
        for r in query(database_url, "SELECT event_id, payload FROM ingest.stripe_events")
    }
    assert stored == first_body
    logged = {
        (r[0], bytes(r[1]))
        for r in query(
            database_url, "SELECT event_id, divergent_sha256 FROM ingest.payload_divergences"
        )
    }
    assert logged == divergent
