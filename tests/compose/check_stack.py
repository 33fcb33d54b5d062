"""The end of `make compose-check`: a running compose stack takes signed webhooks end to end.

Run on the host against the containers (host networking, default ports): real Stripe payloads
from ``../shared/fixtures`` (each with an id of its own, so repeated runs never collide) are
signed with the stack's webhook secret and posted to ingest; each must be answered ``200
archived``, be readable from ingest's archive over gRPC, and become a billing event in the
ledger. Then the two services that sit on top: drift answers ``ListDriftRuns`` over gRPC, and
the back-office (an operator and an API token made with its own CLI inside its container, as an
operator would) shows each event in its webhook log and serves the dashboard as JSON. A non-zero
exit with the reason otherwise. Not collected by pytest (not ``test_*``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import grpc
from billing.drift.v1 import drift_pb2, drift_pb2_grpc
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from services.common.grpc_client import sync_channel
from services.stripe_simulator.signing import sign
from tests.conftest import fixtures_dir

WEBHOOK_URL = os.environ.get("COMPOSE_WEBHOOK_URL", "http://127.0.0.1:8090/webhooks/stripe")
INGEST_ADDR = os.environ.get("COMPOSE_INGEST_ADDR", "127.0.0.1:50051")
LEDGER_ADDR = os.environ.get("COMPOSE_LEDGER_ADDR", "127.0.0.1:50052")
DRIFT_ADDR = os.environ.get("COMPOSE_DRIFT_ADDR", "127.0.0.1:50053")
BACKOFFICE_URL = os.environ.get("COMPOSE_BACKOFFICE_URL", "http://127.0.0.1:8080")
LEDGER_METRICS_URL = os.environ.get("COMPOSE_LEDGER_METRICS_URL", "http://127.0.0.1:9092/metrics")
# How to run a command in the gateway's container (compose-check.sh sets it).
GATEWAY_EXEC = os.environ.get("COMPOSE_GATEWAY_EXEC", "")
# Payloads the ledger turns into billing events (one per file).
FIXTURES = (
    "stripe-ruby-mock/customer.subscription.created__active_api2020-08-27.json",
    "stripe-ruby-mock/customer.subscription.deleted__canceled_api2018-01-23.json",
)
DEADLINE_SECONDS = 300.0


def fail(message: str) -> None:
    print(f"compose-check: FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def wait_for(what: str, probe, deadline: float):  # type: ignore[no-untyped-def]
    """Call ``probe`` until it returns something truthy or the deadline passes."""
    last_error = ""
    while time.monotonic() < deadline:
        try:
            result = probe()
        except (OSError, urllib.error.URLError, grpc.RpcError) as exc:
            last_error = str(exc)[:200]
            result = None
        if result:
            return result
        time.sleep(1.0)
    fail(f"{what} not seen in time ({last_error or 'no answer'})")


def post_webhook(body: bytes, secret: str) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 - WEBHOOK_URL is an http URL we set
        WEBHOOK_URL,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sign(body, secret, int(time.time())),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def gateway_cli(*args: str) -> str | None:
    """The gateway's own CLI inside its container; ``None`` while it cannot answer yet."""
    command = [*GATEWAY_EXEC.split(), "python", "-m", "services.backoffice_gateway", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def backoffice_get(path: str, token: str) -> dict | None:
    """GET a JSON API path with the bearer token (errors are retried by ``wait_for``)."""
    request = urllib.request.Request(  # noqa: S310 - BACKOFFICE_URL is an http URL we set
        BACKOFFICE_URL + path, headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def check_drift(deadline: float) -> None:
    drift = drift_pb2_grpc.DriftServiceStub(sync_channel(DRIFT_ADDR))
    runs = wait_for(
        "drift answering ListDriftRuns",
        lambda: drift.ListDriftRuns(drift_pb2.ListDriftRunsRequest(), timeout=5),
        deadline,
    )
    print(f"compose-check: drift answers ({len(runs.runs)} runs so far)")


def check_backoffice(event_ids: list[str], deadline: float) -> None:
    if not GATEWAY_EXEC:
        fail("COMPOSE_GATEWAY_EXEC is not set: cannot make the back-office operator")
    operator = f"compose-check-{uuid.uuid4().hex[:8]}"
    wait_for(
        "the back-office CLI creating an operator",
        lambda: gateway_cli("operators", "create", operator, "--role", "viewer"),
        deadline,
    )
    token = wait_for(
        "the back-office CLI issuing a token",
        lambda: gateway_cli("operators", "issue-token", operator),
        deadline,
    ).splitlines()[-1]
    for event_id in event_ids:
        shown = wait_for(
            f"{event_id} in the back-office's webhook log",
            lambda event_id=event_id: backoffice_get(f"/api/v1/webhooks/{event_id}", token),
            deadline,
        )
        if event_id not in json.dumps(shown):
            fail(f"the back-office's webhook log does not show {event_id}: {shown}")
    dashboard = wait_for(
        "the back-office dashboard", lambda: backoffice_get("/api/v1/dashboard", token), deadline
    )
    print(f"compose-check: back-office shows the events; dashboard keys {sorted(dashboard)[:6]}")


def check_projection_form() -> None:
    """The image's ledger runs the mypyc-compiled projection (the Dockerfile builds it): a
    silent fall-back to the source would halve the replay rate of every deployment."""
    with urllib.request.urlopen(LEDGER_METRICS_URL, timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    if 'ledger_projection_form{mode="compiled"} 1.0' not in text:
        lines = [line for line in text.splitlines() if line.startswith("ledger_projection_form")]
        fail(f"the ledger does not run the compiled projection: {lines}")
    print("compose-check: the ledger runs the compiled projection")


def main() -> None:
    secret = os.environ["STRIPE_WEBHOOK_SECRETS"].split(",")[0]
    deadline = time.monotonic() + DEADLINE_SECONDS
    ingest = ingest_pb2_grpc.IngestServiceStub(sync_channel(INGEST_ADDR))
    ledger = ledger_pb2_grpc.LedgerServiceStub(sync_channel(LEDGER_ADDR))

    event_ids = []
    for relative in FIXTURES:
        document = json.loads((fixtures_dir() / relative).read_bytes())
        document["id"] = f"evt_compose_{uuid.uuid4().hex[:20]}"
        body = json.dumps(document).encode()
        answer = wait_for(
            f"ingest answering {relative}",
            lambda body=body: (lambda r: r if r[0] != 503 else None)(post_webhook(body, secret)),
            deadline,
        )
        if answer[0] != 200 or answer[1].get("outcome") != "archived":
            fail(f"{relative}: ingest answered {answer}")
        event_ids.append(document["id"])
    for event_id in event_ids:
        archived = wait_for(
            f"{event_id} in ingest's archive",
            lambda event_id=event_id: ingest.GetEvent(
                ingest_pb2.GetEventRequest(event_id=event_id), timeout=5
            ),
            deadline,
        )
        row = wait_for(
            f"{event_id} in the ledger",
            lambda event_id=event_id: ledger.GetBillingEvent(
                ledger_pb2.GetBillingEventRequest(stripe_event_id=event_id), timeout=5
            ),
            deadline,
        )
        print(f"compose-check: {event_id} {archived.type} -> {row.event_type}")
    print(f"compose-check: {len(event_ids)} signed webhooks archived and in the ledger")
    check_projection_form()
    check_drift(deadline)
    check_backoffice(event_ids, deadline)


if __name__ == "__main__":
    main()
