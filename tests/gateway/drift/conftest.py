"""The gateway over the whole drift path: the Stripe simulator, ingest, the ledger consuming
JetStream and the drift service (tests/drift's stack), all real, on real PostgreSQL and NATS.

The stack runs on the test's event loop, so the gateway's blocking calls go through
``asyncio.to_thread`` (see ``Gw``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from services.backoffice_gateway.app import create_app
from services.backoffice_gateway.config import GatewayConfig
from services.backoffice_gateway.operators import create
from tests.drift.conftest import DriftStack, make_ingest, make_stack, sim, stack
from tests.gateway.conftest import ADMIN, PASSWORD, VIEWER, Browser, signed_in

__all__ = ["make_ingest", "make_stack", "sim", "stack"]


@dataclass
class Gw:
    """A signed-in operator whose requests run off the event loop the services use."""

    browser: Browser

    async def get(self, path: str) -> TestResponse:
        return await asyncio.to_thread(self.browser.client.get, path)

    async def post(self, path: str, body: dict[str, Any] | None = None) -> TestResponse:
        return await asyncio.to_thread(self.browser.post_json, path, body or {})


async def start_gateway(stack: DriftStack) -> Flask:
    """The gateway app over ``stack``, with an admin and a viewer operator."""
    app = create_app(GatewayConfig(
        database_url=stack.database_url,
        ledger_target=f"127.0.0.1:{stack.ledger.grpc.port}",
        ingest_target=f"127.0.0.1:{stack.ingest.grpc.port}",
        drift_target=stack.drift_addr,
        secret_key="test",
        banner_cache_seconds=0.0,
        dashboard_cache_seconds=0.0,
        grpc_timeout_seconds=60.0,
    ))
    store = app.extensions["gateway"].store
    await asyncio.to_thread(create, store, ADMIN, "admin", PASSWORD)
    await asyncio.to_thread(create, store, VIEWER, "viewer", PASSWORD)
    return app


def stop_gateway(app: Flask) -> None:
    app.extensions["gateway"].backends.close()
    app.extensions["gateway"].store.dispose()


@pytest.fixture
async def gw_app(stack: DriftStack) -> AsyncIterator[Flask]:
    app = await start_gateway(stack)
    yield app
    stop_gateway(app)


@pytest.fixture
async def admin_gw(gw_app: Flask) -> Gw:
    return Gw(await asyncio.to_thread(signed_in, gw_app, ADMIN))


@pytest.fixture
async def viewer_gw(gw_app: Flask) -> Gw:
    return Gw(await asyncio.to_thread(signed_in, gw_app, VIEWER))
