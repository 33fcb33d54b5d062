"""A JetStream connection that survives the broker being down at start or later.

Publishers must never block a request on NATS: when the broker is away, ``publish`` fails
fast with :class:`BrokerUnavailable` and the caller keeps the message (ingest keeps it in the
archive, which is its outbox). Connection attempts go on in the background until ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import nats
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from services.common.config import env_int

STREAM_NAME = "STRIPE_EVENTS"
SUBJECT_PREFIX = "stripe.events."
DUPLICATE_WINDOW_SECONDS = 120.0
ERROR_LOG_INTERVAL = 30.0

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """NATS is not connected or did not acknowledge in time."""


def subject_for(event_type: str) -> str:
    """The JetStream subject of a Stripe event type (``stripe.events.<type>``)."""
    return SUBJECT_PREFIX + event_type


def stream_config(max_age_seconds: float, replicas: int = 1) -> StreamConfig:
    """``STRIPE_EVENTS``: file storage, dedupe on Nats-Msg-Id for two minutes.

    ``replicas`` must be 3 on a 3-node JetStream cluster (``NATS_STREAM_REPLICAS``), or losing
    the one node holding the stream loses it; 1 for a single embedded server.
    """
    return StreamConfig(
        name=STREAM_NAME,
        subjects=[SUBJECT_PREFIX + ">"],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=max_age_seconds,
        num_replicas=replicas,
    )


async def ensure_stream(js: JetStreamContext, max_age_seconds: float, replicas: int = 1) -> None:
    """Create the stream, or bring an existing one to the expected configuration."""
    config = stream_config(max_age_seconds, replicas)
    try:
        await js.stream_info(STREAM_NAME)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)


class NatsLink:
    """Owns one NATS connection and its JetStream context, reconnecting forever."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        stream_max_age_seconds: float = 30 * 86_400,
        ack_timeout: float = 2.0,
        stream_replicas: int | None = None,
    ) -> None:
        self._url = url
        self._name = name
        self._max_age = stream_max_age_seconds
        self._ack_timeout = ack_timeout
        self._replicas = (
            stream_replicas if stream_replicas is not None else env_int("NATS_STREAM_REPLICAS", 1)
        )
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._last_error_log = float("-inf")
        self._errors_since_log = 0
        # publish_many's acks: one inbox subscription, a future per message awaiting its ack.
        self._ack_prefix: str | None = None
        self._ack_counter = 0
        self._acks_waiting: dict[str, asyncio.Future[None]] = {}

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected and self._js is not None

    @property
    def client(self) -> Client:
        """The core NATS connection (the ledger's pull consumer speaks the pull protocol on it)."""
        if self._client is None or not self.connected:
            raise BrokerUnavailable("NATS is not connected")
        return self._client

    @property
    def jetstream(self) -> JetStreamContext:
        if self._js is None or not self.connected:
            raise BrokerUnavailable("NATS is not connected")
        return self._js

    async def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the first successful connection."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self.connected

    def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        self._task = asyncio.create_task(self._connect_forever(), name=f"nats-connect-{self._name}")

    async def _connect_forever(self) -> None:
        delay = 0.2
        while True:
            try:
                client = await nats.connect(
                    self._url,
                    name=self._name,
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=self._on_error,
                )
                js = client.jetstream(timeout=self._ack_timeout)
                await ensure_stream(js, self._max_age, self._replicas)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("nats connect failed, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._client, self._js = client, js
            self._ready.set()
            log.info("nats connected", extra={"stream": STREAM_NAME})
            return

    async def _on_error(self, exc: Exception) -> None:
        # While the broker is down the client retries twice a second; one line per
        # ERROR_LOG_INTERVAL is enough to tell an operator, the rest is counted.
        self._errors_since_log += 1
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL:
            log.warning(
                "nats error",
                extra={"error": repr(exc), "errors_since_last_log": self._errors_since_log},
            )
            self._last_error_log = now
            self._errors_since_log = 0

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        """Publish with a dedupe id and wait for the stream's acknowledgement."""
        js = self.jetstream
        try:
            await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
        except Exception as exc:
            raise BrokerUnavailable(repr(exc)) from exc

    async def publish_plain(self, subject: str, payload: bytes) -> None:
        """Core NATS publish (no stream, no ack): notifications for live subscribers, such
        as drift's ``billing.drift.detected``."""
        if self._client is None or not self._client.is_connected:
            raise BrokerUnavailable("NATS is not connected")
        try:
            await self._client.publish(subject, payload)
        except Exception as exc:
            raise BrokerUnavailable(repr(exc)) from exc

    async def publish_many(self, messages: Sequence[tuple[str, bytes, str]]) -> list[bool]:
        """Publish ``(subject, payload, msg_id)`` messages, then wait for all their acks at once.

        Pipelining (one timeout for the whole batch instead of a request/ack round trip per
        message) is what lets one process publish thousands of events per second. Returns,
        per message, whether JetStream acknowledged it.

        Each message is a plain publish with a reply subject on this link's own ack inbox
        (one wildcard subscription), not ``JetStreamContext.publish_async``: that one took a
        semaphore through ``asyncio.wait_for`` (a task per message), drew random bytes and a
        NUID for every reply subject and built a ``PubAck`` dataclass from every ack, ~12% of
        the ingest process's CPU in the issue-12 profile. The ack is checked as JetStream
        answers it: a JSON object naming the stream, not an ``error``.
        """
        client = self._client
        if client is None or not self.connected:
            raise BrokerUnavailable("NATS is not connected")
        inbox = await self._ack_inbox(client)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        tokens: list[str] = []  # this batch's (another batch may be publishing meanwhile)
        waiting = self._acks_waiting
        try:
            for subject, payload, msg_id in messages:
                self._ack_counter += 1
                token = str(self._ack_counter)
                future: asyncio.Future[None] = loop.create_future()
                waiting[token] = future
                tokens.append(token)
                futures.append(future)
                await client.publish(
                    subject, payload, reply=inbox + token, headers={"Nats-Msg-Id": msg_id}
                )
        except Exception as exc:
            log.warning("nats publish failed", extra={"error": repr(exc)})
            futures.pop().cancel()  # the one whose publish failed: never sent
        try:
            if futures:
                await asyncio.wait(futures, timeout=self._ack_timeout)
        finally:
            for token in tokens:
                waiting.pop(token, None)
        acked = []
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is None:
                acked.append(True)
            else:
                future.cancel()
                acked.append(False)
        return acked + [False] * (len(messages) - len(futures))

    async def _ack_inbox(self, client: Client) -> str:
        """The reply-subject prefix of :meth:`publish_many`, subscribed once per client (the
        client re-subscribes by itself after a reconnect)."""
        if self._ack_prefix is None:
            prefix = client.new_inbox() + "."
            await client.subscribe(prefix + "*", cb=self._on_ack)
            self._ack_prefix = prefix
        return self._ack_prefix

    async def _on_ack(self, msg: Msg) -> None:
        prefix = self._ack_prefix or ""
        future = self._acks_waiting.pop(msg.subject[len(prefix) :], None)
        if future is None or future.done():
            return  # late (the batch timed out) or unknown
        try:
            answer = orjson.loads(msg.data)  # empty with a 503 status: no stream listens
        except orjson.JSONDecodeError:
            answer = None
        if isinstance(answer, dict) and "stream" in answer and "error" not in answer:
            future.set_result(None)
        else:
            future.set_exception(BrokerUnavailable(f"not acknowledged: {msg.data[:200]!r}"))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.drain()
        self._client = self._js = None
