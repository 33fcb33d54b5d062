"""DirectoryService plus the LedgerService (queries and GetBillingEvent) on one free port,
over one fresh migrated database; ledger rows are inserted directly (``Ledger``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from billing.ledger.v1 import directory_pb2_grpc, ledger_pb2_grpc

from services.common.db import make_async_engine
from services.common.grpc_client import aio_channel
from services.common.grpc_server import GrpcServer
from services.ledger.directory import register
from services.ledger.grpc_api import LedgerServicer
from tests.ledger.queries.conftest import FX, Ledger

if TYPE_CHECKING:
    from billing.ledger.v1.directory_pb2_grpc import DirectoryServiceAsyncStub
    from billing.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub


class _Servicer(LedgerServicer):
    def __init__(self, engine: Any) -> None:
        super().__init__(engine, lambda: None)  # type: ignore[arg-type, return-value]
        self._query_fx = FX


@dataclass
class Services:
    directory: DirectoryServiceAsyncStub
    ledger: LedgerServiceAsyncStub


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    engine = make_async_engine(database_url)
    server = GrpcServer(0, "127.0.0.1")
    register(server, engine)
    server.add(
        ledger_pb2_grpc.add_LedgerServiceServicer_to_server,  # type: ignore[arg-type]
        _Servicer(engine),
        ["billing.ledger.v1.LedgerService"],
    )
    await server.start()
    channel = aio_channel(f"127.0.0.1:{server.port}")
    try:
        yield Services(
            directory_pb2_grpc.DirectoryServiceStub(channel),  # type: ignore[arg-type]
            ledger_pb2_grpc.LedgerServiceStub(channel),  # type: ignore[arg-type]
        )
    finally:
        await channel.close(grace=None)
        await server.stop(grace=0)
        await engine.dispose()


@pytest.fixture
def ledger(database_url: str) -> Ledger:
    return Ledger(database_url)
