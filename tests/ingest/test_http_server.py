"""The webhook port's own HTTP server (services/ingest/http_server.py) on the real service:
the HTTP behaviour aiohttp gave for free, pinned now that the port no longer runs on it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from services.ingest.app import IngestService
from services.stripe_simulator.signing import sign
from tests.ingest.conftest import SECRET, event_body
from tests.ingest.test_webhook import count

pytestmark = pytest.mark.integration
HANG_GUARD = 60


def signed_request(
    body: bytes, *, method: bytes = b"POST", path: bytes = b"/webhooks/stripe",
    version: bytes = b"1.1", extra: bytes = b"",
) -> bytes:
    signature = sign(body, SECRET, int(time.time())).encode()
    return (
        b"%s %s HTTP/%s\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Stripe-Signature: %s\r\nContent-Length: %d\r\n%s\r\n"
        % (method, path, version, signature, len(body), extra)
    ) + body


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    """One response: status, headers (lower-case names), body (by its Content-Length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG_GUARD)
    status_line, *lines = head[:-4].split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return int(status_line.split()[1]), headers, body


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(
    ingest: IngestService, database_url: str
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", ingest.http_port)
    try:
        # Three requests in one write (pipelined), then a fourth on the same connection.
        writer.write(b"".join(signed_request(event_body(f"evt_pipe_{i}")) for i in range(3)))
        for i in range(3):
            status, headers, body = await read_answer(reader)
            assert status == 200
            assert json.loads(body) == {"outcome": "archived", "event_id": f"evt_pipe_{i}"}
            assert b"connection" not in headers  # kept alive
            assert headers[b"content-type"].startswith(b"application/json")
        writer.write(signed_request(event_body("evt_pipe_0")))
        status, _, body = await read_answer(reader)
        assert (status, json.loads(body)["outcome"]) == (200, "duplicate")
    finally:
        writer.close()
    assert count(database_url) == 3


async def test_http_1_0_closes_after_the_answer(ingest: IngestService) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", ingest.http_port)
    try:
        writer.write(signed_request(event_body("evt_http10"), version=b"1.0"))
        status, headers, _ = await read_answer(reader)
        assert status == 200
        assert headers[b"connection"].lower() == b"close"
        assert await asyncio.wait_for(reader.read(), HANG_GUARD) == b""
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        (b"GET", b"/webhooks/stripe", 405),
        (b"PUT", b"/webhooks/stripe", 405),
        (b"POST", b"/webhooks/other", 404),
        (b"POST", b"/", 404),
    ],
)
async def test_other_methods_and_paths(
    method: bytes, path: bytes, status: int, ingest: IngestService, database_url: str
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", ingest.http_port)
    try:
        writer.write(signed_request(event_body("evt_wrong_door"), method=method, path=path))
        answer_status, headers, body = await read_answer(reader)
        assert answer_status == status
        assert "error" in json.loads(body)
        if status == 405:
            assert headers[b"allow"] == b"POST"
        # The connection stays usable.
        writer.write(signed_request(event_body("evt_right_door")))
        assert (await read_answer(reader))[0] == 200
    finally:
        writer.close()
    assert count(database_url) == 1


async def test_head_is_405_without_a_body(ingest: IngestService) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", ingest.http_port)
    try:
        writer.write(b"HEAD /webhooks/stripe HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG_GUARD)
        assert b" 405 " in head.partition(b"\r\n")[0]
        # Nothing follows the head: the next answer starts right after it.
        writer.write(signed_request(event_body("evt_after_head")))
        assert (await read_answer(reader))[0] == 200
    finally:
        writer.close()


async def test_expect_100_continue(ingest: IngestService, database_url: str) -> None:
    body = event_body("evt_expect")
    request = signed_request(body, extra=b"Expect: 100-continue\r\n")
    head, _, _ = request.partition(b"\r\n\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", ingest.http_port)
    try:
        writer.write(head + b"\r\n\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG_GUARD)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        status, _, answer = await read_answer(reader)
        assert (status, json.loads(answer)["outcome"]) == (200, "archived")
    finally:
        writer.close()
    assert count(database_url) == 1


async def test_chunked_bodies(make_ingest, database_url: str) -> None:  # type: ignore[no-untyped-def]
    service: IngestService = await make_ingest(max_body_bytes=4096)
    body = event_body("evt_chunked")
    signature = sign(body, SECRET, int(time.time())).encode()
    head = (
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nStripe-Signature: %s\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" % signature
    )
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:50], body[50:]))
    reader, writer = await asyncio.open_connection("127.0.0.1", service.http_port)
    try:
        writer.write(head + chunks + b"0\r\n\r\n")
        status, _, answer = await read_answer(reader)
        assert (status, json.loads(answer)["outcome"]) == (200, "archived")
        # A chunked body that grows over the limit: 413 and the connection closed.
        writer.write(head + b"".join(b"400\r\n" + b"x" * 1024 + b"\r\n" for _ in range(8)))
        status, headers, answer = await read_answer(reader)
        assert (status, json.loads(answer)["outcome"]) == (413, "too_large")
        assert headers[b"connection"].lower() == b"close"
        assert await asyncio.wait_for(reader.read(), HANG_GUARD) == b""
    finally:
        writer.close()
    assert count(database_url) == 1
