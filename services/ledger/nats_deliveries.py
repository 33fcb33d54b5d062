"""A faster path from the socket to the pull consumer for JetStream deliveries (issue 12).

nats-py turns every incoming message frame into two regular-expression attempts, two awaited
coroutines, a header dictionary, a ``Msg`` with decoded subjects, a trip through the
subscription's queue and one more awaited callback: ~9-10 us of the ledger process's CPU per
event (bench/jetstream_pull_bench.py), a fifth of what the process spends on one. The ledger
reads nothing but JetStream deliveries in bulk, so this parser takes the message frames of the
subscriptions that asked for it (:meth:`DeliveryParser.direct`) straight to a plain function,
with the frame's fields as bytes, and lets nats-py handle everything else exactly as before:
the other subscriptions' messages, status messages without a reply subject, PING / PONG,
INFO, errors.

It replaces the client's parser object (``Client._ps``) on one connection, a private part of
nats-py: the version is pinned (pyproject), and the tests run it against a real nats-server
(tests/ledger/integration/test_jetstream_pull.py). :func:`install` refuses a client that has
no such parser rather than guessing.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from nats.aio.client import Client
from nats.errors import ProtocolError
from nats.protocol.parser import (
    AWAITING_CONTROL_LINE,
    AWAITING_MSG_PAYLOAD,
    ERR_RE,
    INFO_RE,
    OK_RE,
    PING_RE,
    PONG_RE,
    Parser,
)

#: ``sink(subject, reply, data, headers)``: one delivery of a direct subscription, its fields
#: as they came (``headers`` the raw header block, or None).
Sink = Callable[[bytes, bytes, bytes, bytes | None], None]

_CRLF = b"\r\n"
_MESSAGE_LINES = (b"HMSG", b"MSG")


class DeliveryParser(Parser):
    """nats-py's protocol parser, with the message frames of direct subscriptions that carry
    a reply subject handed to their sink without building a ``Msg``."""

    def __init__(self, nc: Client) -> None:
        super().__init__(nc)
        self.sinks: dict[int, Sink] = {}

    def direct(self, sid: int, sink: Sink) -> None:
        """Deliveries (frames with a reply subject) of subscription ``sid`` go to ``sink``."""
        self.sinks[sid] = sink

    def undirect(self, sid: int) -> None:
        self.sinks.pop(sid, None)

    async def parse(self, data: bytes = b"") -> None:
        # ``buf`` is read again after every await: the client may have reset the parser
        # meanwhile (a reconnect), and the old connection's bytes must not be read on.
        buf = self.buf
        buf.extend(data)
        nc = self.nc
        sinks = self.sinks
        while buf:
            if self.state == AWAITING_CONTROL_LINE:
                end = buf.find(_CRLF)
                if end < 0:
                    return  # a split line (INFO can be long): wait for more bytes
                if buf.startswith(_MESSAGE_LINES):
                    self._message_line(bytes(buf[:end]))
                    del buf[: end + 2]
                    self.state = AWAITING_MSG_PAYLOAD
                    continue
                await self._other_line()
                buf = self.buf
                continue
            needed = self.needed
            if len(buf) < needed + 2:
                return  # wait until the payload is complete
            header_size = self.header_needed
            args = self.msg_arg
            sid, subject, reply = args["sid"], args["subject"], args["reply"]
            if header_size:
                headers: bytes | None = bytes(buf[:header_size])
                payload = bytes(buf[header_size:needed])
                self.header_needed = 0
            else:
                headers = None
                payload = bytes(buf[:needed])
            del buf[: needed + 2]
            self.state = AWAITING_CONTROL_LINE
            sink = sinks.get(sid) if reply else None
            if sink is not None:
                sink(subject, reply, payload, headers)
            else:
                await nc._process_msg(sid, subject, reply, payload, headers)
                buf = self.buf

    def _message_line(self, line: bytes) -> None:
        """``MSG <subject> <sid> [reply] <size>`` or ``HMSG <subject> <sid> [reply]
        <header size> <size>``."""
        parts = line.split()
        try:
            if parts[0] == b"HMSG":
                if len(parts) == 6:
                    _, subject, sid, reply, header_size, size = parts
                else:
                    _, subject, sid, header_size, size = parts
                    reply = b""
                self.header_needed = int(header_size)
            elif len(parts) == 5:
                _, subject, sid, reply, size = parts
            else:
                _, subject, sid, size = parts
                reply = b""
            self.msg_arg["subject"] = subject
            self.msg_arg["sid"] = int(sid)
            self.msg_arg["reply"] = reply
            self.needed = int(size)
        except ValueError:
            raise ProtocolError("nats: malformed MSG") from None

    async def _other_line(self) -> None:
        """Any control line but a message's, as nats-py's own parser reads it."""
        buf = self.buf
        nc = self.nc
        if matched := OK_RE.match(buf):
            del buf[: matched.end()]
        elif matched := ERR_RE.match(buf):
            text = matched.groups()[0].decode().lower()
            await nc._process_err(text)
            del buf[: matched.end()]
        elif matched := PING_RE.match(buf):
            del buf[: matched.end()]
            await nc._process_ping()
        elif matched := PONG_RE.match(buf):
            del buf[: matched.end()]
            await nc._process_pong()
        elif matched := INFO_RE.match(buf):
            info = json.loads(matched.groups()[0].decode())
            await nc._process_info(info)
            del buf[: matched.end()]
        else:
            raise ProtocolError("nats: unknown protocol")


def installed(client: Client) -> DeliveryParser | None:
    """The client's :class:`DeliveryParser`, if :func:`install` put one in place."""
    parser = getattr(client, "_ps", None)
    return parser if isinstance(parser, DeliveryParser) else None


def install(client: Client) -> DeliveryParser:
    """The client's :class:`DeliveryParser`, put in place of its own parser on first use
    (state carried over: a frame split across reads stays whole)."""
    if (parser := installed(client)) is not None:
        return parser
    current = getattr(client, "_ps", None)
    if not isinstance(current, Parser):
        raise RuntimeError("this nats-py client has no protocol parser to replace")
    parser = DeliveryParser(client)
    parser.buf = current.buf
    parser.state = current.state
    parser.needed = current.needed
    parser.header_needed = current.header_needed
    parser.msg_arg = current.msg_arg
    client._ps = parser
    return parser
