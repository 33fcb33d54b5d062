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

# Every gRPC server the tests start checks credentials exactly as in production; clients made
# with services.common.grpc_client carry the admin token. Tests of the read scope and of
# refusals pass other tokens explicitly.
TEST_ADMIN_TOKEN = "test-admin-token-0123456789"
TEST_READ_TOKEN = "test-read-token-0123456789"
os.environ.setdefault("GRPC_ADMIN_TOKENS", TEST_ADMIN_TOKEN)
os.environ.setdefault("GRPC_READ_TOKENS", TEST_READ_TOKEN)
os.environ.setdefault("GRPC_CLIENT_TOKEN", TEST_ADMIN_TOKEN)


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
