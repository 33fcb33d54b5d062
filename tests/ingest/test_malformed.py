"""Malformed deliveries get a 400 with a JSON reason, never a 500 or an ERROR traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from services.ingest.app import IngestService
from services.stripe_simulator.signing import sign
from tests.ingest.conftest import SECRET, WebhookClient, event_body
from tests.ingest.test_webhook import count

pytestmark = pytest.mark.integration


async def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` (request line and headers, CRLF-separated, no blank line) and ``body``
    as raw bytes (clients refuse to send some of the malformed headers we need)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"\r\n\r\n" + body)
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def no_error_logs(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [(r.name, r.getMessage()) for r in errors]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_non_ascii_signature_header_is_400(
    ingest: IngestService, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = event_body("evt_non_ascii_sig")
    signature = sign(body, SECRET, int(time.time())).replace("v1=", "v1=\u00e9").encode()
    head = (
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\nStripe-Signature: %s"
        % (len(body), signature)
    )
    status, answer = await raw_request(ingest.http_port, head, body)
    assert status == 400
    assert json.loads(answer)["outcome"] == "bad_signature"
    assert count(database_url) == 0
    no_error_logs(caplog)


async def test_deeply_nested_signed_body_is_400(
    webhooks: WebhookClient, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    depth = 100_000
    body = b'{"a":' * depth + b"1" + b"}" * depth
    status, answer = await webhooks.post(body)
    assert (status, answer["outcome"]) == (400, "invalid_body")
    assert "nested" in str(answer["error"])
    assert count(database_url) == 0
    no_error_logs(caplog)


@pytest.mark.parametrize("created", [10**12, 253_402_300_800, 2**63, -1, 1.5])
async def test_unrepresentable_created_is_400(
    created: object, webhooks: WebhookClient, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    document = json.loads(event_body(f"evt_created_{created}"))
    document["created"] = created
    status, answer = await webhooks.post(json.dumps(document).encode())
    assert (status, answer["outcome"]) == (400, "invalid_body")
    assert "created" in str(answer["error"])
    assert count(database_url) == 0
    no_error_logs(caplog)


async def test_timestamp_in_the_future_beyond_tolerance_is_400(
    webhooks: WebhookClient, database_url: str
) -> None:
    body = event_body("evt_future")
    status, answer = await webhooks.post(body, timestamp=int(time.time()) + 3600)
    assert (status, answer["outcome"]) == (400, "bad_signature")
    assert "future" in str(answer["error"])
    # Within the tolerance (a sender's clock a little ahead) is fine.
    status, _ = await webhooks.post(body, timestamp=int(time.time()) + 60)
    assert status == 200
    assert count(database_url) == 1


async def test_bom_prefixed_signed_body_is_refused_at_the_door(
    webhooks: WebhookClient, database_url: str
) -> None:
    """The rule for ingest and ledger alike: JSON must not start with a byte order mark
    (RFC 8259, section 8.1; Stripe never sends one), so ingest refuses it with 400 and the
    ledger never receives one (it would otherwise be archived, then dead-lettered)."""
    body = b"\xef\xbb\xbf" + event_body("evt_bom")
    status, answer = await webhooks.post(body)
    assert (status, answer["outcome"]) == (400, "invalid_body")
    assert "byte order mark" in str(answer["error"])
    # UTF-16 (which json.loads would detect on bytes) is refused as well: bodies are UTF-8.
    utf16 = event_body("evt_utf16").decode().encode("utf-16-le")
    status, answer = await webhooks.post(utf16)
    assert (status, answer["outcome"]) == (400, "invalid_body")
    assert count(database_url) == 0
