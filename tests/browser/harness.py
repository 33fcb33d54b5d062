"""The back-office on top of the whole suite, for the page and browser tests.

``make run``'s stack (tests/faults/stack.py: real supervisor, embedded PostgreSQL and NATS,
ingest, ledger, drift when present, the Stripe simulator) with a small demo world delivered
through the real signed webhook path, and the gateway's Flask app (``create_app``) pointed
at it, served on a free loopback port by a Werkzeug thread so a real browser can use it.
Operators ``admin`` and ``viewer`` are created with known passwords.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask
from werkzeug.serving import make_server

from services.backoffice_gateway import operators
from services.backoffice_gateway.app import create_app
from services.backoffice_gateway.config import GatewayConfig
from services.common.config import sqlalchemy_url
from services.devstack.embedded import free_port
from services.stripe_simulator.signing import sign
from tests.faults.stack import SECRET, Stack, start_stack, stop_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN = ("gwui-admin", "admin-password-123")
VIEWER = ("gwui-viewer", "viewer-password-123")
#: How often the pages' script polls the banners in these tests (the default is 15 s).
BANNER_POLL_MS = 500
#: Bound on waiting for the ledger to project the demo, so a regression fails, not hangs.
SETTLE_TIMEOUT = 240.0


@dataclass
class Backoffice:
    stack: Stack
    app: Flask
    url: str

    @property
    def database_url(self) -> str:
        return self.stack.database_url

    def scalar(self, sql: str) -> int:
        return self.stack.scalar(sql)

    def ledger_accounts(self) -> list[dict[str, Any]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute("SELECT * FROM ledger.subscriptions LIMIT 500")
            names = [d.name for d in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def upsert_tenant(self, tenant_id: str, name: str) -> None:
        """A tenant of the host application in the ledger's directory (as the host's own
        sync would write it): an account without any Stripe customer yet."""
        from billing.ledger.v1 import directory_pb2, directory_pb2_grpc

        from services.common.grpc_client import sync_channel

        with sync_channel(f"127.0.0.1:{self.stack.port('LEDGER_GRPC_PORT')}") as channel:
            directory_pb2_grpc.DirectoryServiceStub(channel).UpsertTenant(
                directory_pb2.UpsertTenantRequest(tenant_id=tenant_id, name=name), timeout=30
            )

    def unclassified_event(self) -> dict[str, object]:
        """A ``customer.subscription.updated`` for a live subscription that both schedules the
        cancellation and changes the card: two changes the ledger cannot decompose into one
        billing event, so it records an Unclassified row and flags the account with drift."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT e.payload FROM ingest.stripe_events e"
                " JOIN ledger.subscriptions s"
                "   ON s.subscription_id = convert_from(e.payload, 'UTF8')::jsonb"
                "      -> 'data' -> 'object' ->> 'id'"
                " WHERE e.event_type = 'customer.subscription.updated' AND s.status = 'active'"
                " AND NOT s.cancel_at_period_end ORDER BY e.stripe_created_at DESC LIMIT 1"
            ).fetchone()
        assert row is not None, "the demo has an active subscription"
        event = json.loads(bytes(row[0]))
        obj = event["data"]["object"]
        obj["cancel_at_period_end"] = True
        obj["default_payment_method"] = "pm_gwui_new_card"
        event["id"] = f"evt_gwui_drift_{int(time.time() * 1000)}"
        event["created"] = int(time.time())
        event["data"]["previous_attributes"] = {
            "cancel_at_period_end": False,
            "default_payment_method": "pm_gwui_old_card",
        }
        return event

    def wait_for_billing_event(self, event_id: str, event_type: str) -> None:
        """Until the ledger has projected ``event_id`` (as ``event_type``), bounded."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT event_type FROM ledger.billing_events WHERE stripe_event_id = %s",
                    (event_id,),
                ).fetchone()
            if row is not None:
                assert row[0] == event_type, row
                return
            time.sleep(0.5)
        raise AssertionError(f"{event_id} never reached the ledger")

    def post_webhook(self, event: dict[str, Any]) -> int:
        """Deliver one signed event to ingest, exactly as Stripe (and the simulator) would.
        Plain urllib: the browser tests run inside Playwright's event loop."""
        body = json.dumps(event, separators=(",", ":")).encode()
        request = urllib.request.Request(  # noqa: S310 - loopback URL of our own stack
            self.stack.webhook_url,
            data=body,
            method="POST",
            headers={
                "Stripe-Signature": sign(body, SECRET, int(time.time())),
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)


def _settled(stack: Stack) -> None:
    """Wait until the ledger has projected every archived event (the counts stop moving)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    last = -1
    while time.monotonic() < deadline:
        archived = stack.scalar("SELECT count(*) FROM ingest.stripe_events")
        projected = stack.scalar("SELECT count(*) FROM ledger.billing_events")
        if archived > 0 and projected == last and projected > 0:
            return
        last = projected
        time.sleep(2.0)
    raise AssertionError(f"the ledger did not settle:\n{stack.diagnosis()[-3000:]}")


def gateway_config(stack: Stack) -> GatewayConfig:
    return GatewayConfig(
        database_url=sqlalchemy_url(stack.database_url),
        ledger_target=f"127.0.0.1:{stack.port('LEDGER_GRPC_PORT')}",
        ingest_target=f"127.0.0.1:{stack.port('INGEST_GRPC_PORT')}",
        drift_target=f"127.0.0.1:{stack.port('DRIFT_GRPC_PORT')}",
        secret_key="gwui-tests-secret-key",
        banner_cache_seconds=0.0,
        grpc_timeout_seconds=30.0,
    )


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def drift_service(stack: Stack) -> Iterator[subprocess.Popen[bytes] | None]:
    """The drift service beside the stack when ``make run`` does not start it itself (it
    then listens on the stack's DRIFT_GRPC_PORT already). Its scheduled pass is off: the
    tests run passes on demand, as an operator would."""
    port = stack.port("DRIFT_GRPC_PORT")
    if _listening(port) or importlib.util.find_spec("services.drift") is None:
        yield None
        return
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": sqlalchemy_url(stack.database_url),
            "NATS_URL": f"nats://127.0.0.1:{stack.port('EMBEDDED_NATS_PORT')}",
            "STRIPE_API_KEY": "sk_test_simulator",
            "STRIPE_API_BASE": f"http://127.0.0.1:{stack.port('STRIPE_SIMULATOR_PORT')}",
            "DRIFT_GRPC_PORT": str(port),
            "DRIFT_ADMIN_PORT": str(stack.port("DRIFT_ADMIN_PORT")),
            "INGEST_GRPC_PORT": str(stack.port("INGEST_GRPC_PORT")),
            "LEDGER_GRPC_PORT": str(stack.port("LEDGER_GRPC_PORT")),
            "DRIFT_HOST": "127.0.0.1",
            "DRIFT_INTERVAL": "86400",
            "LOG_LEVEL": "WARNING",
        }
    )
    log = (stack.data_dir / "logs" / "gwui-drift.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.drift"],
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the drift service did not start; see gwui-drift.log")
            time.sleep(0.3)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


@contextmanager
def backoffice(root: Path) -> Iterator[Backoffice]:
    stack = start_stack(
        root,
        {
            "DEMO_DATA": "1",
            "SIM_TENANTS": "60",
            "SIM_MONTHS": "3",
            "SIM_SIGNUP_MONTHS": "3",
            "SIM_DROP_RATE": "0",
        },
    )
    with ExitStack() as cleanup:
        cleanup.callback(stop_stack, stack)
        _settled(stack)
        cleanup.enter_context(drift_service(stack))
        app = create_app(gateway_config(stack))
        app.config["BANNER_POLL_MS"] = BANNER_POLL_MS
        store = app.extensions["gateway_store"]
        operators.create(store, ADMIN[0], "admin", ADMIN[1])
        operators.create(store, VIEWER[0], "viewer", VIEWER[1])
        port = free_port()
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        cleanup.callback(server.shutdown)
        yield Backoffice(stack, app, f"http://127.0.0.1:{port}")
