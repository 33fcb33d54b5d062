"""The real ingest and ledger services for the gateway's tests, run on a background loop.

The gateway is synchronous (Flask, blocking gRPC channels) while the services are asyncio;
they run on their own event loop in a thread, so a test's blocking call through Flask's
test client is answered by real servers without the test having to be async.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from services.ingest.app import IngestService, start_ingest
from services.ledger.app import LedgerService, start_ledger
from tests.ingest.conftest import settings_for
from tests.ledger.integration.conftest import ledger_settings

T = TypeVar("T")


class BackgroundLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Services:
    loop: BackgroundLoop
    ingest: IngestService
    ledger: LedgerService

    @property
    def ingest_target(self) -> str:
        return f"127.0.0.1:{self.ingest.grpc.port}"

    @property
    def ledger_target(self) -> str:
        return f"127.0.0.1:{self.ledger.grpc.port}"

    def stop(self) -> None:
        self.loop.run(self.ledger.stop())
        self.loop.run(self.ingest.stop())
        self.loop.close()


def start_services(database_url: str, nats_url: str, consume: bool = False) -> Services:
    loop = BackgroundLoop()

    async def start() -> tuple[IngestService, LedgerService]:
        ingest = await start_ingest(replace(settings_for(database_url, nats_url)))
        await ingest.link.wait_connected(10)
        ledger = await start_ledger(
            ledger_settings(
                database_url, nats_url, f"127.0.0.1:{ingest.grpc.port}", consume=consume,
                consumer_name=f"gw_{uuid.uuid4().hex[:10]}",
            )
        )
        return ingest, ledger

    ingest, ledger = loop.run(start())
    return Services(loop, ingest, ledger)
