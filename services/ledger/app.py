"""Wiring of the ledger service: JetStream consumer, gRPC, admin port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import grpc
from aiohttp import web
from billing.ingest.v1 import ingest_pb2_grpc
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.admin import admin_app, database_check, nats_check, start_site
from services.common.db import make_async_engine
from services.common.grpc_client import aio_channel
from services.common.grpc_server import GrpcServer
from services.common.nats_link import NatsLink
from services.ledger.bulk_indexes import restore_at_start
from services.ledger.consumer import ConsumerOptions, LedgerConsumer
from services.ledger.directory.servicer import register as register_directory
from services.ledger.domain import native
from services.ledger.effects import tune_gc_for_projection
from services.ledger.grpc_api import READ_ONLY_METHODS, LedgerServicer
from services.ledger.lag import LagMonitor
from services.ledger.settings import LedgerSettings
from services.ledger.worker_pool import projection_pool

log = logging.getLogger("ledger")

#: Which form of the projection this process runs (services/ledger/domain/native.py). The
#: compiled form replays about twice as fast; a deployment that silently runs the source (no
#: build in the image, or a stale one) shows it here and in the start-up log, not only as a
#: slow rebuild during an incident.
PROJECTION_FORM = Gauge(
    "ledger_projection_form",
    "1 for the form of the projection this process runs: compiled (mypyc build), pure (no"
    " build), disabled (LEDGER_COMPILED=0) or stale (a build that does not match the source)",
    ["mode"],
)


def export_projection_form(status: native.NativeStatus) -> None:
    """Set ``ledger_projection_form``: 1 for ``status.mode``, 0 for every other mode."""
    for mode in native.MODES:
        PROJECTION_FORM.labels(mode=mode).set(1 if mode == status.mode else 0)


@dataclass
class LedgerService:
    """A running ledger service; ``stop()`` takes it down in dependency order."""

    settings: LedgerSettings
    engine: AsyncEngine
    link: NatsLink
    consumer: LedgerConsumer | None
    grpc: GrpcServer
    ingest_channel: grpc.aio.Channel  # type: ignore[name-defined]
    runners: list[web.AppRunner]
    executor: ProcessPoolExecutor | None = None
    lag: LagMonitor | None = None
    #: rebuilds indexes a killed bulk replay left dropped (services.ledger.bulk_indexes)
    restoring: asyncio.Task[None] | None = None

    @property
    def admin_port(self) -> int:
        for address in self.runners[0].addresses:
            return int(address[1])
        raise RuntimeError("admin site not started")

    async def stop(self) -> None:
        """Stop taking calls, finish the batch in hand, close connections."""
        await self.grpc.stop(grace=5.0)
        if self.restoring is not None:
            self.restoring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.restoring
        if self.consumer is not None:
            await self.consumer.stop()
        if self.lag is not None:
            await self.lag.stop()
        for runner in self.runners:
            await runner.cleanup()
        await self.ingest_channel.close()
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)
        await self.link.close()
        await self.engine.dispose()
        log.info("ledger stopped")


async def start_ledger(settings: LedgerSettings) -> LedgerService:
    """Start every part of the service; returns once the ports listen."""
    export_projection_form(native.STATUS)
    engine = make_async_engine(settings.database_url, pool_size=6, statement_timeout_ms=120_000)
    # In the background: the ports must not wait for index builds after a crash.
    restoring = asyncio.create_task(restore_at_start(engine), name="ledger-restore-indexes")
    link = NatsLink(
        settings.nats_url,
        name=f"ledger-{settings.consumer_name}",
        stream_max_age_seconds=settings.stream_max_age_days * 86_400,
    )
    link.start()
    consumer: LedgerConsumer | None = None
    lag: LagMonitor | None = None
    if settings.consume:
        consumer = LedgerConsumer(engine, link, ConsumerOptions.from_settings(settings))
        consumer.start()
        lag = LagMonitor(link, settings.consumer_name)
        lag.start()

    # The suite's client channel: carries GRPC_CLIENT_TOKEN (and TLS when configured).
    ingest_channel = aio_channel(
        settings.ingest_grpc_addr,
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    ingest_stub = ingest_pb2_grpc.IngestServiceStub(ingest_channel)
    # Replays are CPU-bound in JSON parsing and classification: worker processes overlap it
    # with the writes (the consumer's batches are small enough to project in-line).
    # Spawned, not forked: services/ledger/worker_pool.py says why.
    executor = projection_pool(settings.replay_workers) if settings.replay_workers > 0 else None
    tune_gc_for_projection()  # the consumer projects in this process

    runners = [
        await start_site(
            # NATS away: the consumer waits, queries and replays still work (degraded).
            admin_app(database_check(engine), degraded_by=nats_check(link)),
            settings.host,
            settings.admin_port,
            reuse_port=settings.reuse_port,
        )
    ]
    grpc_server = GrpcServer(settings.grpc_port, settings.host, reuse_port=settings.reuse_port)
    grpc_server.add(
        ledger_pb2_grpc.add_LedgerServiceServicer_to_server,  # type: ignore[arg-type]
        LedgerServicer(
            engine,
            lambda: ingest_stub,
            replay_batch_size=settings.replay_batch_size,
            executor=executor,
            before_replay=restoring,
        ),
        [ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name],
        read_only_methods=READ_ONLY_METHODS,
    )
    register_directory(grpc_server, engine)
    await grpc_server.start()
    service = LedgerService(
        settings,
        engine,
        link,
        consumer,
        grpc_server,
        ingest_channel,
        runners,
        executor,
        lag,
        restoring,
    )
    log.info(
        "ledger started",
        extra={
            "grpc_port": grpc_server.port,
            "admin_port": service.admin_port,
            "consumer": settings.consumer_name if consumer else None,
            "projection": native.STATUS.mode,
        },
    )
    return service


async def main() -> None:
    from services.common.lifecycle import wait_for_shutdown_signal
    from services.common.logs import configure_logging

    settings = LedgerSettings.from_env()
    configure_logging("ledger", settings.log_level)
    service = await start_ledger(settings)
    with contextlib.suppress(asyncio.CancelledError):
        await wait_for_shutdown_signal()
    await service.stop()
