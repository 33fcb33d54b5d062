"""Wiring of the ingest service: webhook HTTP, gRPC, admin port, writer and outbox."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from dataclasses import dataclass

from aiohttp import web
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.admin import admin_app, database_check, nats_check, start_site
from services.common.db import make_async_engine
from services.common.grpc_server import GrpcServer
from services.common.nats_link import NatsLink
from services.common.stripe_client import make_stripe_client
from services.ingest.archive import ArchiveWriter
from services.ingest.grpc_api import READ_ONLY_METHODS, IngestServicer
from services.ingest.http_server import WebhookServer
from services.ingest.publisher import OutboxPublisher
from services.ingest.settings import IngestSettings
from services.ingest.signature import SignatureVerifier
from services.ingest.webhook import WebhookHandler

log = logging.getLogger("ingest")


@dataclass
class IngestService:
    """A running ingest service; ``stop()`` takes it down in dependency order."""

    settings: IngestSettings
    engine: AsyncEngine
    link: NatsLink
    writer: ArchiveWriter
    publisher: OutboxPublisher
    grpc: GrpcServer
    http: WebhookServer
    runners: list[web.AppRunner]

    @property
    def http_port(self) -> int:
        return self.http.port

    @property
    def admin_port(self) -> int:
        return _bound_port(self.runners[0])

    async def stop(self) -> None:
        """Stop taking traffic, commit what was accepted, flush the outbox, close."""
        await self.grpc.stop(grace=5.0)
        await self.http.stop(grace=10.0)
        for runner in self.runners:
            await runner.cleanup()
        await self.writer.close()
        await self.publisher.close()
        await self.link.close()
        await self.engine.dispose()
        log.info("ingest stopped")


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        return int(address[1])
    raise RuntimeError("site not started")


async def start_ingest(settings: IngestSettings) -> IngestService:
    """Start every part of the service; returns once all ports listen."""
    engine = make_async_engine(
        settings.database_url,
        pool_size=settings.archive_writers + 4,
        statement_timeout_ms=int(settings.commit_timeout * 1000) + 3000,
    )
    link = NatsLink(
        settings.nats_url,
        name="ingest",
        stream_max_age_seconds=settings.stream_max_age_days * 86_400,
    )
    link.start()
    publisher = OutboxPublisher(engine, link, sweep_interval=settings.outbox_sweep_interval)
    writer = ArchiveWriter(engine, on_committed=publisher.notify, writers=settings.archive_writers)
    publisher.start()

    verifier = SignatureVerifier(settings.webhook_secrets, settings.signature_tolerance)
    handler = WebhookHandler(
        writer,
        verifier,
        max_body_bytes=settings.max_body_bytes,
        commit_timeout=settings.commit_timeout,
    )
    # The webhook port: its own lean HTTP server (services/ingest/http_server.py, issue 12).
    # A connection that has not delivered a request's headers within the read timeout is
    # closed; a body left unread (413, 408) is not drained before closing.
    http = WebhookServer(handler, read_timeout=settings.read_timeout)
    await http.start(settings.host, settings.http_port, reuse_port=settings.reuse_port)
    runners = [
        await start_site(
            admin_app(database_check(engine), degraded_by=nats_check(link)),
            settings.host,
            settings.admin_port,
            reuse_port=settings.reuse_port,
        ),
    ]
    grpc_server = GrpcServer(settings.grpc_port, settings.host, reuse_port=settings.reuse_port)
    grpc_server.add(
        ingest_pb2_grpc.add_IngestServiceServicer_to_server,  # type: ignore[arg-type]
        IngestServicer(engine, writer, publisher, make_stripe_client(settings.stripe)),
        [ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name],
        read_only_methods=READ_ONLY_METHODS,
    )
    await grpc_server.start()
    service = IngestService(
        settings, engine, link, writer, publisher, grpc_server, http, runners
    )
    log.info(
        "ingest started",
        extra={
            "http_port": service.http_port,
            "grpc_port": grpc_server.port,
            "admin_port": service.admin_port,
        },
    )
    return service


def freeze_startup_objects() -> None:
    """Take what start-up built out of the cyclic collector's reach (``gc.freeze``).

    Start-up leaves ~107,000 long-lived objects (modules, SQLAlchemy, gRPC, aiohttp), and
    every full (generation 2) collection walked them all again although none ever becomes
    garbage: one such collection per ~10,000 webhooks, measured at 209-240 ms on the loaded
    bench machine, during which every in-flight webhook (64 at the bench's concurrency)
    waits, which is the p99 of the run (issue 12 goal 3, bench/RESULTS.md "Fifth pass").
    Objects made later are collected as before.
    """
    gc.collect()
    gc.freeze()


async def main() -> None:
    from services.common.lifecycle import wait_for_shutdown_signal
    from services.common.logs import configure_logging

    settings = IngestSettings.from_env()
    configure_logging("ingest", settings.log_level)
    service = await start_ingest(settings)
    freeze_startup_objects()
    with contextlib.suppress(asyncio.CancelledError):
        await wait_for_shutdown_signal()
    await service.stop()
