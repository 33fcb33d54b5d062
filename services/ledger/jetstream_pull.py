"""A lean JetStream pull client for the ledger's durable consumer (issue 12, goal 2).

nats-py's ``PullSubscription.fetch`` waits for every message of a batch with ``next_msg``:
per message a task, an ``asyncio.wait_for`` and a ``uuid4`` name. Profiled on the live ledger,
that machinery was the second cost of the process after the projection (RESULTS.md, sixth
pass). This module speaks the pull protocol itself on top of the core NATS client:

- ONE inbox subscription for the life of the binding (``<inbox>.*``); every pull request gets
  its own reply subject ``<inbox>.<n>``, so a status that answers an older request (a 408
  arriving after we stopped waiting) is recognised and ignored, while a message delivered
  for an older request is still ours and kept for the next fetch (nothing is waited out
  until ``ack_wait``).
- A fetch is a ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`` request: first ``no_wait``
  (whatever is pending now, ended by a 404 when less than the batch is there), then, when
  that brought nothing, one lingering request with ``expires`` (and optionally
  ``idle_heartbeat``). Arriving messages are appended to a list by the subscription's
  callback; the fetch waits on ONE future per request, never per message.
- Acks are plain publishes to each message's ``$JS.ACK...`` reply subject, written out by
  the client's flusher in one go for the whole batch. Acks stay explicit per message
  (AckPolicy.ALL would let one ledger process acknowledge another's uncommitted batch).

Statuses (the ``Status`` header of a message without a reply subject): 100 heartbeat (the
connection is alive, nothing else), 404 / 408 (the request is over: nothing more now / it
expired), 409 (the request is over; "Consumer Deleted" and "Consumer is push based" raise
:class:`PullConsumerGone` so the caller binds again, "Exceeded MaxRequest..." raises
:class:`PullRequestRejected` because repeating the request cannot succeed; Leadership Change,
Exceeded MaxWaiting and the like only end the request), 503 (no JetStream behind the subject:
:class:`PullConsumerGone`), anything else :class:`PullRequestRejected`.

Every request carries ``max_bytes``: the server ends it (409 "Message Size Exceeds MaxBytes")
before the messages it sends exceed that many bytes. Without it, a batch of large events asked
for at once could exceed what the server lets one client have unread (``max_pending``, 64 MB
by default) while this process was busy projecting: the server cut the connection as a "slow
consumer", the whole batch waited out ``ack_wait``, and the next full-size request did the
same (seen with 32,000 events of ~3 KB, issue 12). A request ended that way is still a
backlog: :attr:`JetStreamPull.cut_by_bytes` says so, and the caller keeps its batch size.

Deliveries skip nats-py's per-message machinery: the connection's protocol parser hands the
inbox subscription's message frames straight to :meth:`JetStreamPull._on_delivery`
(services/ledger/nats_deliveries.py), which keeps them as :class:`Delivery` records whose
headers are read only when asked for. That was ~3 of the ~9.5 us of this client's CPU per
message (bench/jetstream_pull_bench.py). Status messages (no reply subject) still come through
the subscription's callback.

A reconnect in the middle of a request needs nothing special: the client subscribes the inbox
again on the new connection, every wait here ends at its own deadline, and messages that were
in flight are redelivered by JetStream after ``ack_wait`` (the projection is idempotent).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.ledger.nats_deliveries import install, installed

log = logging.getLogger(__name__)

ACK_PREFIX = "$JS.ACK."
STATUS = "Status"
DESCRIPTION = "Description"
# The server ends a lingering request this much before the local wait gives up, so its 408
# normally arrives while we still listen (a late one is recognised as stale anyway).
EXPIRES_MARGIN = 0.05
# How many undelivered messages the inbox subscription may hold before nats-py calls the
# consumer slow; the callback empties it continuously into our own list.
INBOX_PENDING_MSGS = 1_000_000
INBOX_PENDING_BYTES = 1 << 30
#: The server's answer to a request whose next message would exceed its ``max_bytes``.
MAX_BYTES_REACHED = "Message Size Exceeds MaxBytes"


class PullError(RuntimeError):
    """A pull request was answered with a status that is not just "no messages"."""

    def __init__(self, status: str, description: str) -> None:
        super().__init__(f"{status} {description}".strip())
        self.status = status
        self.description = description


class PullConsumerGone(PullError):
    """The durable consumer (or JetStream itself) is not there: bind again."""


class PullRequestRejected(PullError):
    """The server refused the request as such (bad request, a request limit exceeded)."""


@dataclass(frozen=True, slots=True)
class AckMetadata:
    """What a delivered message's reply subject says about the delivery."""

    stream: str
    consumer: str
    num_delivered: int
    stream_seq: int
    consumer_seq: int
    timestamp_ns: int
    num_pending: int


def parse_ack_subject(reply: str) -> AckMetadata:
    """Read ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` (9 tokens)
    or the newer ``$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.
    <cseq>.<ts>.<pending>[.<random>]`` (11 or 12 tokens).

    ``ValueError`` for anything else: a reply subject we cannot read is not a JetStream
    delivery, and guessing its delivery count would decide a dead letter wrongly.
    """
    tokens = reply.split(".")
    if len(tokens) == 9:
        first = 2
    elif len(tokens) in (11, 12):
        first = 4
    else:
        raise ValueError(f"not a JetStream ack subject: {reply!r}")
    if tokens[0] != "$JS" or tokens[1] != "ACK":
        raise ValueError(f"not a JetStream ack subject: {reply!r}")
    try:
        delivered, sseq, cseq, ts, pending = (int(t) for t in tokens[first + 2 : first + 7])
    except ValueError:
        raise ValueError(f"not a JetStream ack subject: {reply!r}") from None
    return AckMetadata(tokens[first], tokens[first + 1], delivered, sseq, cseq, ts, pending)


def status_error(status: str, description: str) -> PullError | None:
    """The error a terminating status means, or ``None`` when it only ends the request."""
    if status in ("404", "408"):
        return None
    if status == "409":
        if description.startswith(("Consumer Deleted", "Consumer is push based")):
            return PullConsumerGone(status, description)
        if description.startswith("Exceeded MaxRequest"):
            return PullRequestRejected(status, description)
        return None  # Leadership Change, Exceeded MaxWaiting, Message Size Exceeds MaxBytes, ...
    if status == "503":
        return PullConsumerGone(status, description)
    return PullRequestRejected(status, description)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message JetStream delivered to the consumer, as the frame carried it.

    Built for every event, so it holds bytes and decodes only what is read: the reply subject
    goes back to the server as it came in each ack, the headers (only a dead letter reads
    them) are parsed on demand.
    """

    subject_bytes: bytes
    ack_subject: bytes  # the reply subject: ``$JS.ACK...``
    data: bytes
    raw_headers: bytes | None = None

    @property
    def subject(self) -> str:
        return self.subject_bytes.decode()

    @property
    def reply(self) -> str:
        return self.ack_subject.decode()

    @property
    def headers(self) -> dict[str, str] | None:
        return parse_headers(self.raw_headers) if self.raw_headers else None

    @classmethod
    def of(cls, msg: Msg) -> Delivery:
        """The record of a message that came the slow way (a nats-py ``Msg``)."""
        raw = None
        if msg.headers:
            lines = "".join(f"{name}: {value}\r\n" for name, value in msg.headers.items())
            raw = f"NATS/1.0\r\n{lines}\r\n".encode()
        return cls(msg.subject.encode(), msg.reply.encode(), msg.data, raw)


def parse_headers(raw: bytes) -> dict[str, str]:
    """A NATS header block (``NATS/1.0[ status]`` then ``Name: value`` lines) as a dict; the
    first line, version and inline status, is left out."""
    headers: dict[str, str] = {}
    for line in raw.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            headers[name.decode().strip()] = value.decode().strip()
    return headers


@dataclass(slots=True)
class _Request:
    subject: str
    want: int  # total buffered messages that complete the fetch
    done: asyncio.Future[None]


class JetStreamPull:
    """Pulls batches of a durable pull consumer through one inbox subscription."""

    def __init__(
        self,
        client: Client,
        stream: str,
        durable: str,
        *,
        idle_heartbeat: float = 0.0,
        max_bytes: int = 0,
    ) -> None:
        """``max_bytes``: at most this many bytes of messages per request (0: no bound). It is
        raised to twice the server's ``max_payload`` when below it, so that any single message
        fits: a message larger than a request's ``max_bytes`` is never delivered to it."""
        self._client = client
        self._api_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._idle_heartbeat = idle_heartbeat
        self._max_bytes = max_bytes
        #: The last fetch's requests ended at ``max_bytes`` (a backlog, not a short fetch).
        self.cut_by_bytes = False
        self._inbox = client.new_inbox()
        self._sub: Subscription | None = None
        self._buffer: list[Delivery] = []
        self._request: _Request | None = None
        self._sequence = 0
        # Statuses seen, by code ("100" heartbeats included), and those that answered a
        # request no longer waited for (diagnostics and tests).
        self.statuses: Counter[str] = Counter()
        self.stale_statuses = 0

    async def start(self) -> None:
        self._sub = await self._client.subscribe(
            self._inbox + ".*",
            cb=self._on_message,
            pending_msgs_limit=INBOX_PENDING_MSGS,
            pending_bytes_limit=INBOX_PENDING_BYTES,
        )
        try:
            install(self._client).direct(self._sub._id, self._on_delivery)
        except RuntimeError as exc:  # not the pinned nats-py: the callback still delivers
            log.warning("nats deliveries take the slow path: %s", exc)

    async def stop(self) -> None:
        """Unsubscribe; messages still buffered are not acked and come back after ack_wait."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            parser = installed(self._client)
            if parser is not None:
                parser.undirect(sub._id)
            await sub.unsubscribe()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    async def fetch(self, batch: int, timeout: float) -> list[Delivery]:
        """Up to ``batch`` messages: at once what is pending, else wait up to ``timeout`` for
        the first ones (an empty list when none came)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.cut_by_bytes = False
        if len(self._buffer) < batch:
            await self._pull(batch, deadline, lingering=False)
            if not self._buffer and self.cut_by_bytes:
                # The next message alone is larger than the bound (stored while the server
                # allowed larger payloads): that one message, unbounded, or the consumer
                # would ask for it forever and get a 409 each time.
                await self._pull(1, deadline, lingering=False, bounded=False)
        if not self._buffer:
            await self._pull(batch, deadline, lingering=True)
        taken, self._buffer = self._buffer[:batch], self._buffer[batch:]
        return taken

    async def _pull(
        self, batch: int, deadline: float, *, lingering: bool, bounded: bool = True
    ) -> None:
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        self._sequence += 1
        request = _Request(f"{self._inbox}.{self._sequence}", batch, loop.create_future())
        body: dict[str, int | bool] = {"batch": batch - len(self._buffer)}
        if lingering:
            expires = remaining - EXPIRES_MARGIN
            if expires <= 0:
                return
            body["expires"] = int(expires * 1e9)
            if self._idle_heartbeat and self._idle_heartbeat * 2 <= expires:
                body["idle_heartbeat"] = int(self._idle_heartbeat * 1e9)
        else:
            body["no_wait"] = True
        if self._max_bytes and bounded:
            body["max_bytes"] = max(self._max_bytes, 2 * self._client.max_payload)
        self._request = request
        try:
            await self._client.publish(
                self._api_subject, json.dumps(body).encode(), reply=request.subject
            )
            if len(self._buffer) < request.want:
                await self._wait(request, remaining, renew=not lingering)
        finally:
            self._request = None

    async def _wait(self, request: _Request, window: float, *, renew: bool) -> None:
        """Wait for ``request`` to end, or ``window`` seconds: what came, came.

        A ``no_wait`` request gets another window as long as its messages keep arriving: on a
        loaded machine reading 2,000 messages can take longer than one window, and cutting
        the batch there gave the next transactions a few hundred messages each (a
        transaction's cost is partly per batch). The server ends such a request itself
        (the count, or a 404), so only a lost connection stops the arrivals. A lingering
        request keeps its deadline: the server's ``expires`` bounds it anyway.
        """
        while True:
            seen = len(self._buffer)
            try:
                await asyncio.wait_for(asyncio.shield(request.done), window)
                return
            except TimeoutError:
                if not renew or len(self._buffer) == seen:
                    return

    def _on_delivery(
        self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        """A delivery, straight from the connection's parser (its reply subject is the
        message's ``$JS.ACK...`` subject)."""
        self._keep(Delivery(subject, reply, data, headers))

    def _keep(self, delivery: Delivery) -> None:
        self._buffer.append(delivery)
        request = self._request
        if request is not None and len(self._buffer) >= request.want:
            _finish(request, None)

    async def _on_message(self, msg: Msg) -> None:
        """Subscription callback: act on statuses (no I/O here); a delivery only comes this
        way if the direct path could not be installed."""
        request = self._request
        if msg.reply:
            self._keep(Delivery.of(msg))
            return
        headers = msg.headers or {}
        status = headers.get(STATUS, "")
        self.statuses[status] += 1
        if status == "100":  # idle heartbeat: the connection and the request are alive
            return
        if request is None or msg.subject != request.subject:
            self.stale_statuses += 1
            return
        description = headers.get(DESCRIPTION, "")
        if status == "409" and description.startswith(MAX_BYTES_REACHED):
            self.cut_by_bytes = True
        _finish(request, status_error(status, description))

    async def ack(self, msgs: Sequence[Delivery]) -> None:
        """Acknowledge each message: one explicit ack per message, written as ONE buffer.

        Published one by one, 2,000 acks were 2,000 entries of nats-py's outgoing list, which
        its flusher hands to ``writelines`` one by one: that and ``publish``'s per-call checks
        were a fifth of the pull client's CPU (bench/jetstream_pull_bench.py). The batch's
        ``PUB <reply> 0`` lines are joined and queued through the client's own command
        queue (``_send_command``, the step ``publish`` ends with); the last ack goes through
        the public ``publish``, which wakes the flusher. While the client is not connected,
        or if that internal method is missing, every ack takes the public path (which
        buffers during a reconnect and raises when the connection is closed).
        """
        if not msgs:
            return
        client = self._client
        send = getattr(client, "_send_command", None)
        if send is not None and client.is_connected and len(msgs) > 1:
            await send(b"".join([b"PUB " + m.ack_subject + b" 0\r\n\r\n" for m in msgs[:-1]]))
            msgs = msgs[-1:]
        for msg in msgs:
            await client.publish(msg.reply)

    async def nak(self, msg: Delivery, delay: float | None = None) -> None:
        """Ask for a redelivery, after ``delay`` seconds when given."""
        payload = b"-NAK"
        if delay is not None:
            payload += b" " + json.dumps({"delay": int(delay * 1e9)}).encode()
        await self._client.publish(msg.reply, payload)

    async def term(self, msg: Delivery) -> None:
        """Stop redelivering this message (it was set aside as a dead letter)."""
        await self._client.publish(msg.reply, b"+TERM")


def _finish(request: _Request, error: PullError | None) -> None:
    if request.done.done():
        return
    if error is None:
        request.done.set_result(None)
    else:
        request.done.set_exception(error)
