"""The end of `make compose-check`: a running compose stack takes signed webhooks end to end.

Run on the host against the containers (host networking, default ports): real Stripe payloads
from ``../shared/fixtures`` (each with an id of its own, so repeated runs never collide) are
signed with the stack's webhook secret and posted to ingest; each must be answered ``200
archived``, be readable from ingest's archive over gRPC, and become a billing event in the
ledger. A non-zero exit with the reason otherwise. Not collected by pytest (not ``test_*``).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

import grpc
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from services.common.grpc_client import sync_channel
from services.stripe_simulator.signing import sign
from tests.conftest import fixtures_dir

WEBHOOK_URL = os.environ.get("COMPOSE_WEBHOOK_URL", "http://127.0.0.1:8090/webhooks/stripe")
INGEST_ADDR = os.environ.get("COMPOSE_INGEST_ADDR", "127.0.0.1:50051")
LEDGER_ADDR = os.environ.get("COMPOSE_LEDGER_ADDR", "127.0.0.1:50052")
# Payloads the ledger turns into billing events (one per file).
FIXTURES = (
    "stripe-ruby-mock/customer.subscription.created__active_api2020-08-27.json",
    "stripe-ruby-mock/customer.subscription.deleted__canceled_api2018-01-23.json",
)
DEADLINE_SECONDS = 120.0


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


if __name__ == "__main__":
    main()
