"""HTTP hardening of the webhook port: slow senders are cut off, absurd sizes refused at
once, malformed requests answered 400 without an ERROR traceback in the logs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from services.ingest.app import IngestService
from tests.ingest.conftest import event_body
from tests.ingest.test_malformed import no_error_logs
from tests.ingest.test_webhook import count

pytestmark = pytest.mark.integration
# A bound on waiting for the server, so a regression fails instead of hanging the suite.
HANG_GUARD = 60
# "At once": the defect was an answer (and close) only after aiohttp's 10 s lingering.
AT_ONCE = 5


async def exchange(port: int, data: bytes, bound: float = HANG_GUARD) -> bytes:
    """Send ``data`` and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), bound)
    finally:
        writer.close()


@pytest.fixture
async def hardened(make_ingest: Callable[..., object]) -> IngestService:
    service = await make_ingest(read_timeout=0.5)  # type: ignore[misc]
    assert isinstance(service, IngestService)
    return service


async def test_huge_content_length_is_413_and_closed(
    hardened: IngestService, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    head = (
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000000000\r\n\r\n"
    )
    # Answered and closed at once, not after reading (or lingering on) the announced body.
    answer = await exchange(hardened.http_port, head, AT_ONCE)
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers.lower()
    assert json.loads(body)["outcome"] == "too_large"
    assert count(database_url) == 0
    no_error_logs(caplog)


async def test_slow_body_is_cut_off_with_408(
    hardened: IngestService, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = event_body("evt_slow")
    head = (
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Stripe-Signature: t=1,v1=00\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    answer = await exchange(hardened.http_port, head + body[:10])  # the rest never comes
    assert b" 408 " in answer.partition(b"\r\n")[0]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["outcome"] == "timeout"
    assert count(database_url) == 0
    no_error_logs(caplog)


async def test_slow_headers_are_cut_off(hardened: IngestService) -> None:
    answer = await exchange(hardened.http_port, b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n")
    assert answer == b""  # connection closed by the server, nothing answered


@pytest.mark.parametrize(
    "request_",
    [
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ],
)
async def test_malformed_requests_are_400_without_traceback(
    request_: bytes, ingest: IngestService, caplog: pytest.LogCaptureFixture
) -> None:
    answer = await exchange(ingest.http_port, request_)
    assert b" 400 " in answer.partition(b"\r\n")[0], answer[:200]
    no_error_logs(caplog)
