"""The webhook port's HTTP/1.1 server: an asyncio protocol around httptools (llhttp).

Why not aiohttp here (issue 12): the port serves ONE endpoint with small bodies, and
aiohttp's per-request machinery (request and response objects, a task per request, the
router, the payload stream, the response writer) was ~40% of the ingest process's CPU per
webhook. This server parses with llhttp (the C parser Node.js uses), keeps the request as a
few local values, answers from the archive future's callback without a task per request and
writes each answer with one ``transport.write``. The admin port stays on aiohttp.

What it keeps of the previous server's behaviour (tests/ingest pin it):
- keep-alive (HTTP/1.1 by default, HTTP/1.0 on request), pipelined requests answered in order;
- a connection that does not deliver a request's headers within ``read_timeout`` (also
  before its first request) is closed without an answer; a body that does not arrive within
  ``read_timeout`` of its headers is answered 408 and the connection closed;
- an announced body over the limit: 413 and close at once, without reading it; a chunked
  body that grows over it: the same once it does;
- a request the parser refuses (bad header line, bad Content-Length, Content-Length with
  Transfer-Encoding, garbage): 400 and close, one WARNING line, no traceback;
- another path: 404; another method: 405 with ``Allow: POST``;
- ``Expect: 100-continue`` answered with ``100 Continue`` (when the size is acceptable);
- graceful stop: the port stops accepting, idle connections close, requests in flight get
  their answer (with ``Connection: close``) within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections import deque
from email.utils import formatdate
from typing import cast

import httptools

from services.common.grpc_errors import short
from services.ingest.webhook import WEBHOOK_PATH, Answer, Archiving, WebhookHandler

log = logging.getLogger(__name__)

_REASONS = {
    100: b"Continue",
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Payload Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_PATH = WEBHOOK_PATH.encode()
# Requests parsed ahead of the one being answered (pipelining) before reading pauses.
_MAX_QUEUED = 16


def _plain(status: int, error: str, *, close: bool = False) -> Answer:
    """An answer outside the webhook's contract (not counted as a webhook outcome)."""
    return Answer(status, json.dumps({"error": error}).encode(), close)


class _Clock:
    """The ``Date`` header, formatted once per second rather than per answer."""

    def __init__(self) -> None:
        self._second = -1
        self._header = b""

    def header(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._header = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._header


class _Connection(asyncio.Protocol):
    """One client connection: parse, queue complete requests, answer them in order."""

    def __init__(self, server: WebhookServer) -> None:
        self._server = server
        self._handler = server.handler
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        # The request being parsed.
        self._url = b""
        self._signature: bytes | None = None
        self._expect_continue = False
        self._length: int | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._in_message = False
        self._headers_done = False
        # Complete requests (or answers decided while parsing), oldest first.
        self._queue: deque[tuple[bytes, bytes, bytes | None, bytes, bool, float] | Answer] = (
            deque()
        )
        self._busy = False  # an answer is being computed (the archive's commit)
        self._stop_parsing = False  # the connection ends after what is queued
        self._closing = False
        self._reading_paused = False
        self._eof = False  # the client half-closed: answer what is queued, then close
        # Since when the connection waits for the client (headers or body), for the sweeper
        # (``time.perf_counter``); the request's headers' arrival, for the latency histogram.
        self.waiting_since = time.perf_counter()
        self._headers_at = self.waiting_since

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._transport = None
        self._server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self._stop_parsing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._stop_parsing = True  # no protocol switch here: serve what came, then close
            if self._in_message:
                self._queue.append(_plain(400, "protocol upgrade not supported", close=True))
        except httptools.HttpParserError as exc:
            log.warning("malformed HTTP request: %s", short(str(exc), 120))
            self._stop_parsing = True
            self._queue.append(_plain(400, "malformed HTTP request", close=True))
        self._pump()

    def eof_received(self) -> bool:
        """The client will send nothing more: keep the connection open for the answers still
        owed (``True``), or let asyncio close it when none are."""
        self._stop_parsing = True
        if self._busy or self._queue:
            self._eof = True
            return True
        return False

    def pause_writing(self) -> None:
        self._pause_reading()

    def resume_writing(self) -> None:
        self._resume_reading()

    # --- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._headers_done = False
        self._url = b""
        self._signature = None
        self._expect_continue = False
        self._length = None
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"stripe-signature":
            if self._signature is None:  # the first one, as before
                self._signature = value
        elif lowered == b"content-length":
            # llhttp refuses anything but digits (400); this only keeps a bad value from
            # raising here first.
            self._length = int(value) if value.isdigit() else None
        elif lowered == b"expect":
            self._expect_continue = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        self._headers_done = True
        # Now the body's time runs (and the request's, for the latency histogram).
        self.waiting_since = self._headers_at = time.perf_counter()
        if self._length is not None and self._length > self._handler.max_body_bytes:
            self._refuse_large()
        elif self._expect_continue and self._transport is not None and not self._queue:
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self._stop_parsing:
            return
        self._size += len(body)
        if self._size > self._handler.max_body_bytes:
            self._refuse_large()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._stop_parsing:
            return
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body = []
        self._queue.append(
            (
                self._parser.get_method(),
                self._url,
                self._signature,
                body,
                self._parser.should_keep_alive(),
                self._headers_at,
            )
        )
        if len(self._queue) >= _MAX_QUEUED:
            self._pause_reading()

    # --- answering --------------------------------------------------------------------------

    def _refuse_large(self) -> None:
        self._stop_parsing = True
        self._in_message = False
        self._body = []
        self._queue.append(self._handler.too_large(self._headers_at))

    def _pump(self) -> None:
        """Answer queued requests in order until one has to wait for the archive."""
        while self._queue and not self._busy and not self._closing:
            item = self._queue.popleft()
            if isinstance(item, Answer):
                self._write(item, b"POST", keep_alive=False)
                continue
            method, url, signature, body, keep_alive, started = item
            if url.partition(b"?")[0] != _PATH:
                self._write(_plain(404, "not found"), method, keep_alive)
                continue
            if method != b"POST":
                refused = _plain(405, "method not allowed")
                self._write(refused, method, keep_alive, b"Allow: POST\r\n")
                continue
            # Decoded as aiohttp did (undecodable bytes kept apart: the verifier refuses them).
            header = None if signature is None else signature.decode("utf-8", "surrogateescape")
            result = self._handler.receive(body, header, started)
            if isinstance(result, Answer):
                self._write(result, method, keep_alive)
                continue
            self._busy = True
            result.future.add_done_callback(functools.partial(self._archived, result, keep_alive))
        if not self._queue and self._reading_paused and not self._closing:
            self._resume_reading()

    def _archived(self, pending: Archiving, keep_alive: bool, _done: object) -> None:
        self._busy = False
        try:
            result = self._handler.archived(pending)
        except Exception:  # a bug: the client gets a 500, the log the traceback
            log.exception("webhook answer failed")
            result = _plain(500, "internal error", close=True)
        if self._closing:
            return
        self._write(result, b"POST", keep_alive)
        self._pump()

    def _write(self, result: Answer, method: bytes, keep_alive: bool, extra: bytes = b"") -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        close = (
            result.close or not keep_alive or self._server.stopping
            or (self._eof and not self._queue)
        )
        head = b"HTTP/1.1 %d %s\r\n%sContent-Type: application/json; charset=utf-8\r\n" % (
            result.status,
            _REASONS.get(result.status, b"Unknown"),
            self._server.clock.header(),
        )
        head += b"Content-Length: %d\r\n%s%s\r\n" % (
            len(result.body),
            extra,
            b"Connection: close\r\n" if close else b"",
        )
        transport.write(head if method == b"HEAD" else head + result.body)
        if close:
            self.close()
        else:
            self.waiting_since = time.perf_counter()  # the keep-alive wait starts

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Nothing in flight, nothing queued, no request begun."""
        return not self._busy and not self._queue and not self._in_message

    def check_timeout(self, now: float, read_timeout: float) -> None:
        """Called by the server's sweeper: end a connection that keeps the server waiting."""
        if self._busy or self._queue or self._closing or now - self.waiting_since < read_timeout:
            return
        if self._in_message and self._headers_done:
            self._stop_parsing = True
            self._write(self._handler.timed_out(self._headers_at), b"POST", keep_alive=False)
        else:  # headers not (fully) sent within the timeout: close without an answer
            self.close()

    def close(self) -> None:
        self._closing = True
        self._stop_parsing = True
        if self._transport is not None:
            self._transport.close()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()


class WebhookServer:
    """Serves :class:`WebhookHandler` on one port; ``await stop()`` ends it gracefully."""

    def __init__(self, handler: WebhookHandler, *, read_timeout: float = 10.0) -> None:
        self.handler = handler
        self.read_timeout = read_timeout
        self.connections: set[_Connection] = set()
        self.clock = _Clock()
        self.stopping = False
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self),
            host,
            port,
            reuse_address=True,
            reuse_port=reuse_port or None,
            backlog=1024,
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        self._sweeper = asyncio.create_task(self._sweep(), name="webhook-http-timeouts")

    async def _sweep(self) -> None:
        """One timer for every connection's read timeout (instead of a timer per request)."""
        interval = min(1.0, max(0.05, self.read_timeout / 5))
        while True:
            await asyncio.sleep(interval)
            now = time.perf_counter()
            for connection in list(self.connections):
                connection.check_timeout(now, self.read_timeout)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting; close idle connections; give requests in flight ``grace`` seconds
        to be answered (with ``Connection: close``), then cut what is left."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + grace
        while True:
            for connection in list(self.connections):
                if connection.idle:
                    connection.close()
            if not self.connections or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            connection.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
