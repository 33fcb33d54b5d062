"""What an outside tester does to a running suite (``make run``'s real processes and
supervisor), and what must hold: nothing acknowledged is lost, the stack heals itself.

Bounded load: a few hundred webhooks per test; the stack starts once for the module.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from services.common.grpc_client import aio_channel
from tests.faults.stack import (
    LoadReport,
    Stack,
    send_until_acked,
    start_stack,
    stop_stack,
    thaw,
)
from tests.helpers import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(Path(tmp_path_factory.mktemp("faults")) / "data")
    try:
        yield running
    finally:
        stop_stack(running)


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


async def test_kill_9_ingest_under_load(stack: Stack) -> None:
    before = stack.child_pid("services.ingest")
    assert before is not None
    report = LoadReport()
    ids = [f"evt_kill_ingest_{i}" for i in range(300)]
    load = asyncio.create_task(send_until_acked(stack.webhook_url, ids, report))
    await eventually(lambda: len(report.acked) >= 50, attempts=1200)
    os.kill(before, signal.SIGKILL)
    await load

    # Every acknowledged webhook is archived; every webhook was eventually acknowledged
    # (ingest came back), as Stripe's retries would see it.
    assert report.acked == set(ids), stack.diagnosis()
    assert report.acked <= stack.archived_ids()
    assert report.errors > 0 or report.statuses.get(503, 0) > 0  # the outage was seen
    after = stack.child_pid("services.ingest")
    assert after is not None and after != before
    assert "supervisor: ingest exited with -9" in stack.supervisor_log()


async def verify_ledger(stack: Stack) -> ledger_pb2.VerifyLedgerResponse:
    async with aio_channel(f"127.0.0.1:{stack.port('LEDGER_GRPC_PORT')}") as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        return await stub.VerifyLedger(ledger_pb2.VerifyLedgerRequest(), timeout=120)  # type: ignore[no-any-return]


def deliver_world(stack: Stack) -> dict[str, object]:
    """The simulator's seeded world through the real, signed webhook path (bounded size)."""
    port = stack.port("STRIPE_SIMULATOR_PORT")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/_sim/deliver", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310
        answer: dict[str, object] = json.loads(response.read())
        return answer


async def test_nats_killed_under_load(stack: Stack) -> None:
    archived = "SELECT count(*) FROM ingest.stripe_events"
    before = stack.scalar(archived)
    delivery = asyncio.create_task(asyncio.to_thread(deliver_world, stack))
    await eventually(lambda: stack.scalar(archived) > before + 30)  # under load
    os.kill(stack.nats_pid(), signal.SIGKILL)
    at_kill = stack.scalar(archived)
    report = await delivery
    assert stack.scalar(archived) > at_kill  # webhooks were accepted after NATS died
    # Webhooks are still accepted while NATS is away (the archive is the outbox).
    assert report["failed"] == 0 and report["delivered"] == report["events"], report
    await eventually(lambda: "supervisor: nats exited with -9" in stack.supervisor_log())

    # NATS is back (supervisor): the outbox drains, the ledger catches up and agrees with a
    # rebuild from the archive.
    await eventually(
        lambda: (
            stack.scalar("SELECT count(*) FROM ingest.stripe_events WHERE published_at IS NULL")
            == 0
        ),
        attempts=1200,
    )

    async def agrees() -> bool:
        try:
            answer = await verify_ledger(stack)
        except grpc.aio.AioRpcError:
            return False
        return answer.mismatches == 0 and answer.examined > 0

    await eventually(agrees, attempts=120, pause=1.0)
    assert stack.scalar("SELECT count(*) FROM ledger.billing_events") > 0


async def test_postgres_stopped_answers_503_never_200(stack: Stack) -> None:
    ids = [f"evt_pg_stopped_{i}" for i in range(40)]
    frozen = stack.freeze_postgres()
    try:
        report = LoadReport()
        await send_until_acked(stack.webhook_url, ids, report, max_attempts=1)
        assert report.acked == set()
        assert report.statuses == {503: len(ids)}
        assert await asyncio.to_thread(healthz, stack.port("INGEST_ADMIN_PORT")) == 503
    finally:
        thaw(frozen)
    # Back: Stripe's retries are acknowledged, and archived.
    report = LoadReport()
    await send_until_acked(stack.webhook_url, ids, report)
    assert report.acked == set(ids), stack.diagnosis()
    assert report.acked <= stack.archived_ids()

    # PostgreSQL killed outright: the supervisor restarts it; meanwhile nothing is acked
    # that is not archived.
    ids = [f"evt_pg_killed_{i}" for i in range(200)]
    report = LoadReport()
    load = asyncio.create_task(send_until_acked(stack.webhook_url, ids, report))
    await eventually(lambda: len(report.acked) >= 20, attempts=1200)
    os.kill(stack.postgres_pid(), signal.SIGKILL)
    await load
    assert report.acked == set(ids), stack.diagnosis()
    assert report.acked <= stack.archived_ids()
    assert "supervisor: postgres exited with -9" in stack.supervisor_log()
