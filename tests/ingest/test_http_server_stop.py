"""Unit test of the webhook server's graceful stop: the archive is a stub whose commit the
test completes by hand, so "a request in flight while the server stops" is exact."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from services.ingest.archive import ArchiveOutcome, ArchiveUnavailable, ArchiveWriter
from services.ingest.http_server import WebhookServer
from services.ingest.signature import SignatureVerifier
from services.ingest.webhook import WebhookHandler
from tests.ingest.conftest import SECRET, event_body
from tests.ingest.test_http_server import HANG_GUARD, read_answer, signed_request


class HeldArchive:
    """Stands in for ArchiveWriter: every submitted event waits until the test answers it."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[ArchiveOutcome]] = []
        self.submitted = asyncio.Event()

    def submit(self, event: Any, *, timeout: float | None = None) -> asyncio.Future[ArchiveOutcome]:
        future: asyncio.Future[ArchiveOutcome] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        self.submitted.set()
        return future


async def serve(archive: HeldArchive, commit_timeout: float = 2.0) -> WebhookServer:
    """The webhook server on a free port, its archive replaced by ``archive``."""
    handler = WebhookHandler(
        cast(ArchiveWriter, archive),
        SignatureVerifier([SECRET], 300),
        max_body_bytes=1 << 20,
        commit_timeout=commit_timeout,
    )
    server = WebhookServer(handler, read_timeout=30)
    await server.start("127.0.0.1", 0)
    return server


async def test_stop_answers_requests_in_flight_and_closes_idle_connections() -> None:
    archive = HeldArchive()
    server = await serve(archive)
    busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", server.port)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        busy_writer.write(signed_request(event_body("evt_in_flight")))
        await asyncio.wait_for(archive.submitted.wait(), HANG_GUARD)

        stopping = asyncio.create_task(server.stop(grace=HANG_GUARD))
        # The idle keep-alive connection is closed at once, without an answer.
        assert await asyncio.wait_for(idle_reader.read(), HANG_GUARD) == b""
        assert not stopping.done()
        # New connections are refused.
        try:
            await asyncio.open_connection("127.0.0.1", server.port)
        except OSError:
            pass
        else:
            raise AssertionError("the stopping server accepted a connection")

        archive.futures[0].set_result(ArchiveOutcome.ARCHIVED)
        status, headers, _ = await read_answer(busy_reader)
        assert status == 200
        assert headers[b"connection"].lower() == b"close"
        assert await asyncio.wait_for(busy_reader.read(), HANG_GUARD) == b""
        await asyncio.wait_for(stopping, HANG_GUARD)
    finally:
        busy_writer.close()
        idle_writer.close()


async def test_commit_deadline_is_503() -> None:
    """The archive never answers: the handler's commit deadline answers 503 (as before)."""

    class SlowArchive(HeldArchive):
        def submit(self, event: Any, *, timeout: float | None = None) -> Any:
            future = super().submit(event, timeout=timeout)
            assert timeout is not None
            expired = ArchiveUnavailable("the commit did not finish in time")
            asyncio.get_running_loop().call_later(timeout, future.set_exception, expired)
            return future

    server = await serve(SlowArchive(), commit_timeout=0.1)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(signed_request(event_body("evt_slow_commit")))
        status, _, answer = await read_answer(reader)
        assert status == 503
        assert b"unavailable" in answer
    finally:
        writer.close()
        await server.stop(grace=1)
