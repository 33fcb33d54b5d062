"""The projection's worker processes are spawned, never forked (services/ledger/worker_pool.py):
a child forked from the ledger's threaded process once crashed in its after-fork hooks (issue
12, stop 20). The replay through such a worker gives the same ledger as the replay in the
event loop that the other tests use."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from services.common.grpc_client import aio_channel
from services.ledger.app import LedgerService
from services.ledger.worker_pool import projection_pool
from tests.ingest.conftest import WebhookClient
from tests.ledger.integration.conftest import post_all
from tests.ledger.integration.ledger_helpers import billing_event_ids, world_bodies

pytestmark = pytest.mark.integration


def spawned_children() -> set[int]:
    """This process's live multiprocessing children that run a fresh interpreter (a spawned
    child's command line runs ``multiprocessing.spawn``; a forked one keeps the parent's)."""
    return {
        child.pid
        for child in multiprocessing.active_children()
        if child.pid is not None
        and b"multiprocessing.spawn" in Path(f"/proc/{child.pid}/cmdline").read_bytes()
    }


def test_the_pool_starts_its_workers_as_fresh_interpreters() -> None:
    before = spawned_children()
    pool = projection_pool(2)
    try:
        futures = [pool.submit(os.getpid) for _ in range(2)]  # none idle: two are started
        answers = {future.result(timeout=120) for future in futures}
        started = spawned_children() - before
        assert len(started) == 2
        assert answers <= started  # the work ran in them
    finally:
        pool.shutdown()


async def test_replay_through_a_spawned_worker(
    make_ledger: Callable[..., Any],
    webhook_client: WebhookClient,
    db: psycopg.AsyncConnection[Any],
) -> None:
    bodies = world_bodies(5, 4, 3)
    await post_all(webhook_client, [b for _, b in bodies])
    before = spawned_children()
    service: LedgerService = await make_ledger(consume=False, replay_workers=1)
    async with aio_channel(f"127.0.0.1:{service.grpc.port}") as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        replayed = await stub.ReplayArchive(ledger_pb2.ReplayArchiveRequest())
        expected = (len(bodies), len(billing_event_ids(bodies)))
        assert (replayed.examined, replayed.applied) == expected
        worker = spawned_children() - before
        assert len(worker) == 1  # started by the replay, a fresh interpreter
        verified = await stub.VerifyLedger(ledger_pb2.VerifyLedgerRequest())
        assert verified.mismatches == 0, verified.sample
