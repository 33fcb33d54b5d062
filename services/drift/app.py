"""Wiring of the drift service: gRPC (DriftService + StripeOperations), admin port, worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace

import grpc
from aiohttp import web
from billing.drift.v1 import drift_pb2, drift_pb2_grpc
from billing.ingest.v1 import ingest_pb2_grpc
from billing.ledger.v1 import ledger_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.admin import admin_app, database_check, nats_check, start_site
from services.common.db import make_async_engine
from services.common.grpc_client import aio_channel
from services.common.grpc_server import GrpcServer
from services.common.nats_link import NatsLink
from services.common.stripe_client import make_stripe_client
from services.drift.detector import DriftDeps
from services.drift.grpc_api import (
    DRIFT_READ_ONLY,
    OPERATIONS_READ_ONLY,
    DriftServicer,
    StripeOperationsServicer,
)
from services.drift.operations import StripeOperationsService
from services.drift.publisher import nats_publisher
from services.drift.settings import DriftSettings
from services.drift.stripe_calls import StripeCaller, TokenBucket
from services.drift.sync import DriftActions
from services.drift.worker import DriftWorker

log = logging.getLogger("drift")

GRPC_MESSAGE_LIMIT = 64 * 1024 * 1024


@dataclass
class DriftService:
    settings: DriftSettings
    engine: AsyncEngine
    link: NatsLink
    grpc: GrpcServer
    channels: list[grpc.aio.Channel]  # type: ignore[name-defined]
    runners: list[web.AppRunner]
    deps: DriftDeps
    worker: DriftWorker | None

    @property
    def admin_port(self) -> int:
        for address in self.runners[0].addresses:
            return int(address[1])
        raise RuntimeError("admin site not started")

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        await self.grpc.stop(grace=5.0)
        for runner in self.runners:
            await runner.cleanup()
        for channel in self.channels:
            await channel.close()
        if self.deps.caller is not None:
            self.deps.caller.close()
        await self.link.close()
        await self.engine.dispose()
        log.info("drift stopped")


def make_caller(settings: DriftSettings) -> StripeCaller | None:
    """The process's one Stripe caller (one token bucket), or None without Stripe."""
    if not settings.stripe_configured and not settings.stripe.api_base:
        return None
    client = make_stripe_client(replace(settings.stripe, max_retries=0))
    return StripeCaller(client, TokenBucket(settings.max_rps), concurrency=settings.concurrency)


async def start_drift(settings: DriftSettings) -> DriftService:
    engine = make_async_engine(settings.database_url, pool_size=5, statement_timeout_ms=60_000)
    link = NatsLink(settings.nats_url, name="drift")
    link.start()
    options = [("grpc.max_receive_message_length", GRPC_MESSAGE_LIMIT)]
    ingest_channel = aio_channel(settings.ingest_grpc_addr, options=options)
    ledger_channel = aio_channel(settings.ledger_grpc_addr, options=options)
    deps = DriftDeps(
        engine=engine,
        caller=make_caller(settings),
        ingest=ingest_pb2_grpc.IngestServiceStub(ingest_channel),  # type: ignore[arg-type]
        ledger=ledger_pb2_grpc.LedgerServiceStub(ledger_channel),  # type: ignore[arg-type]
        settle_seconds=settings.settle_seconds,
        publish=nats_publisher(link),
    )
    actions = DriftActions(deps)
    from services.drift.recovery import Recovery

    actions.attach_recovery(Recovery(deps))
    runners = [
        await start_site(
            admin_app(database_check(engine), degraded_by=nats_check(link)),
            settings.host,
            settings.admin_port,
        )
    ]
    server = GrpcServer(settings.grpc_port, settings.host)
    names = drift_pb2.DESCRIPTOR.services_by_name
    server.add(
        drift_pb2_grpc.add_DriftServiceServicer_to_server,  # type: ignore[arg-type]
        DriftServicer(deps, actions),
        [names["DriftService"].full_name],
        read_only_methods=DRIFT_READ_ONLY,
    )
    server.add(
        drift_pb2_grpc.add_StripeOperationsServicer_to_server,  # type: ignore[arg-type]
        StripeOperationsServicer(StripeOperationsService(engine, deps.caller)),
        [names["StripeOperations"].full_name],
        read_only_methods=OPERATIONS_READ_ONLY,
    )
    await server.start()
    worker = None
    if settings.interval > 0:
        worker = DriftWorker(deps, settings.interval, settings.stripe_configured)
        worker.start()
    service = DriftService(
        settings, engine, link, server, [ingest_channel, ledger_channel], runners, deps, worker
    )
    log.info(
        "drift started",
        extra={
            "grpc_port": server.port,
            "admin_port": service.admin_port,
            "stripe": deps.caller is not None,
            "interval": settings.interval,
        },
    )
    return service


async def main() -> None:
    from services.common.lifecycle import wait_for_shutdown_signal
    from services.common.logs import configure_logging

    settings = DriftSettings.from_env()
    configure_logging("drift", settings.log_level)
    service = await start_drift(settings)
    with contextlib.suppress(asyncio.CancelledError):
        await wait_for_shutdown_signal()
    await service.stop()
