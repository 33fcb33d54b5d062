"""Shared fixtures: real PostgreSQL and NATS, fresh migrated databases, fixtures paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.migrate import upgrade_to_head
from services.devstack.embedded import EmbeddedNats
from tests.servers import PostgresHandle, nats_server, postgres_server, unique_name

REPO_ROOT = Path(__file__).resolve().parents[1]


def fixtures_dir() -> Path:
    """Real Stripe event payloads: ``$STRIPE_FIXTURES_DIR`` or ``../shared/fixtures/...``."""
    configured = os.environ.get("STRIPE_FIXTURES_DIR")
    if configured:
        return Path(configured)
    return REPO_ROOT.parent / "shared" / "fixtures" / "stripe_events"


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresHandle]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def nats() -> Iterator[EmbeddedNats]:
    with nats_server() as server:
        yield server


@pytest.fixture
def database_url(pg: PostgresHandle) -> str:
    """A new database with every migration applied: tests never see each other's rows."""
    url = pg.create_database(unique_name("test"))
    upgrade_to_head(url)
    return url
