"""ReplayArchive waits for the service's start-time rebuild of dropped indexes.

Under load the background rebuild (services.ledger.bulk_indexes.restore_at_start) once ran
between a replay's first batches, after that replay had dropped its indexes, so the rest of
the bulk load maintained every index row by row. The servicer now awaits the rebuild before
it starts a replay; this pins the order without a database (the replay itself is replaced).
"""

from __future__ import annotations

import asyncio
from typing import Any

from billing.ledger.v1 import ledger_pb2

from services.ledger import grpc_api
from services.ledger.replay import ReplayReport


async def test_a_replay_starts_only_after_the_start_time_rebuild(monkeypatch: Any) -> None:
    started: list[str] = []

    async def replay(*_args: Any, **_kwargs: Any) -> ReplayReport:
        started.append("replay")
        return ReplayReport(examined=3, applied=2)

    monkeypatch.setattr(grpc_api, "replay_archive", replay)
    rebuild: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    servicer = grpc_api.LedgerServicer(
        None,  # type: ignore[arg-type]  # never reached: the replay is replaced
        lambda: None,  # type: ignore[arg-type,return-value]
        before_replay=rebuild,
    )
    call = asyncio.ensure_future(
        servicer.ReplayArchive(ledger_pb2.ReplayArchiveRequest(), None)  # type: ignore[arg-type]
    )
    for _ in range(20):
        await asyncio.sleep(0)
    assert started == []  # still waiting for the rebuild
    rebuild.set_result(None)
    answer = await call
    assert started == ["replay"]
    assert (answer.examined, answer.applied) == (3, 2)


async def test_a_caller_giving_up_does_not_cancel_the_rebuild(monkeypatch: Any) -> None:
    async def replay(*_args: Any, **_kwargs: Any) -> ReplayReport:
        return ReplayReport()

    monkeypatch.setattr(grpc_api, "replay_archive", replay)
    rebuild: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    servicer = grpc_api.LedgerServicer(
        None,  # type: ignore[arg-type]
        lambda: None,  # type: ignore[arg-type,return-value]
        before_replay=rebuild,
    )
    call = asyncio.ensure_future(
        servicer.ReplayArchive(ledger_pb2.ReplayArchiveRequest(), None)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0)
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    assert not rebuild.cancelled()
