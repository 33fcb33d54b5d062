"""Gateway fixtures: the Flask app (test client) against the REAL ledger and ingest services
on real PostgreSQL and NATS, with the hand-built ledger world of tests/ledger/queries.

One migrated database and one pair of services per test module (starting them per test
would dominate the run); tests that write only add their own operators and audit rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from services.backoffice_gateway.app import create_app
from services.backoffice_gateway.config import GatewayConfig
from services.backoffice_gateway.operators import create
from services.common.migrate import upgrade_to_head
from services.devstack.embedded import EmbeddedNats, free_port
from tests.gateway.stack import Services, start_services
from tests.ledger.queries import world
from tests.ledger.queries.conftest import Ledger
from tests.servers import PostgresHandle, unique_name

ADMIN = "admin-op"
VIEWER = "viewer-op"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def gw_database_url(pg: PostgresHandle) -> str:
    url = pg.create_database(unique_name("gw"))
    upgrade_to_head(url)
    return url


@pytest.fixture(scope="module")
def services(
    gw_database_url: str, nats: EmbeddedNats
) -> Iterator[Services]:
    mp = pytest.MonkeyPatch()
    mp.setenv("FX_RATES", "EUR=1.08,JPY=0.0067")
    mp.setenv("PLATFORM_CURRENCY", "USD")
    world.build(Ledger(gw_database_url))
    running = start_services(gw_database_url, nats.url)
    yield running
    running.stop()
    mp.undo()


def gateway_config(database_url: str, services: Services, **overrides: object) -> GatewayConfig:
    base = GatewayConfig(
        database_url=database_url,
        ledger_target=services.ledger_target,
        ingest_target=services.ingest_target,
        drift_target=f"127.0.0.1:{free_port()}",  # nothing listens until drift is merged
        secret_key="test-secret-key",
        banner_cache_seconds=0.0,
        dashboard_cache_seconds=0.0,
        grpc_timeout_seconds=5.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def app(gw_database_url: str, services: Services) -> Iterator[Flask]:
    application = create_app(gateway_config(gw_database_url, services))
    store = application.extensions["gateway"].store
    create(store, ADMIN, "admin", PASSWORD)
    create(store, VIEWER, "viewer", PASSWORD)
    yield application
    application.extensions["gateway"].backends.close()
    store.dispose()


_CSRF = re.compile(r'name=["\']csrf_token["\'][^>]*value=["\']([^"\']+)["\']|'
                   r'value=["\']([^"\']+)["\'][^>]*name=["\']csrf_token["\']')


def form_csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no csrf_token field in the form"
    return match.group(1) or match.group(2)


@dataclass
class Browser:
    """A test client signed in as one operator, with the session's CSRF token at hand."""

    client: FlaskClient
    csrf: str

    def post_json(self, path: str, body: object | None = None) -> TestResponse:
        return self.client.post(path, json=body if body is not None else {},
                                headers={"X-CSRF-Token": self.csrf})


def login(client: FlaskClient, username: str, password: str = PASSWORD,
          next_url: str = "/") -> TestResponse:
    page = client.get("/login")
    token = form_csrf(page.get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token, "next": next_url})


def signed_in(app: Flask, username: str) -> Browser:
    client = app.test_client()
    answer = login(client, username)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    me = client.get("/api/v1/me").get_json()
    return Browser(client, me["csrf_token"])


@pytest.fixture
def admin(app: Flask) -> Browser:
    return signed_in(app, ADMIN)


@pytest.fixture
def viewer(app: Flask) -> Browser:
    return signed_in(app, VIEWER)
