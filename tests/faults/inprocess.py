"""Ingest + ledger in this process, on their own database and NATS server (fault tests that
need a clean slate without the whole `make run`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from services.common.migrate import upgrade_to_head
from services.ingest.app import IngestService, start_ingest
from services.ledger.app import LedgerService, start_ledger
from tests.ingest.conftest import settings_for
from tests.ledger.integration.conftest import ledger_settings
from tests.servers import PostgresHandle, nats_server, unique_name


@dataclass
class Suite:
    ingest: IngestService
    ledger: LedgerService
    database_url: str

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest.http_port}/webhooks/stripe"


@asynccontextmanager
async def suite(pg: PostgresHandle, **ingest_overrides: Any) -> AsyncIterator[Suite]:
    url = pg.create_database(unique_name("faults"))
    upgrade_to_head(url)
    with nats_server() as broker:
        ingest = await start_ingest(replace(settings_for(url, broker.url), **ingest_overrides))
        try:
            await ingest.link.wait_connected(10)
            ledger = await start_ledger(
                ledger_settings(url, broker.url, f"127.0.0.1:{ingest.grpc.port}")
            )
            try:
                yield Suite(ingest, ledger, url)
            finally:
                await ledger.stop()
        finally:
            await ingest.stop()
