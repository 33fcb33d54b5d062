"""The ledger's protocol parser (services/ledger/nats_deliveries.py) against nats-py's own: the
same wire bytes, cut at any point, must give the same frames in the same order, with only the
direct subscription's deliveries going to the sink instead of the client."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from nats.errors import ProtocolError
from nats.protocol.parser import Parser

from services.ledger.jetstream_pull import Delivery, parse_headers
from services.ledger.nats_deliveries import DeliveryParser, install

DIRECT = 7  # the pull inbox's sid in these streams


class _Recorder:
    """Stands in for the nats client: records what the parser hands over (unit test only)."""

    def __init__(self) -> None:
        self.frames: list[tuple[Any, ...]] = []

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        self.frames.append(("msg", sid, bytes(subject), bytes(reply), data, headers))

    async def _process_ping(self) -> None:
        self.frames.append(("ping",))

    async def _process_pong(self) -> None:
        self.frames.append(("pong",))

    async def _process_err(self, text: str) -> None:
        self.frames.append(("err", text))

    async def _process_info(self, info: dict[str, Any]) -> None:
        self.frames.append(("info", info))


def _msg(sid: int, subject: str, reply: str, data: bytes) -> bytes:
    reply_part = f" {reply}" if reply else ""
    return f"MSG {subject} {sid}{reply_part} {len(data)}\r\n".encode() + data + b"\r\n"


def _hmsg(sid: int, subject: str, reply: str, headers: bytes, data: bytes) -> bytes:
    reply_part = f" {reply}" if reply else ""
    line = f"HMSG {subject} {sid}{reply_part} {len(headers)} {len(headers) + len(data)}\r\n"
    return line.encode() + headers + data + b"\r\n"


def _wire(rng: random.Random, count: int) -> bytes:
    """A mixed stream: deliveries to the direct sid (with and without headers), its status
    messages (no reply), other subscriptions' messages, and every control line."""
    parts: list[bytes] = [b'INFO {"server_id":"x","max_payload":1048576}\r\n']
    for n in range(count):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        ack = f"$JS.ACK.S.c.1.{n + 1}.{n + 1}.1700000000000000000.{count - n}"
        kind = rng.randrange(8)
        if kind < 3:
            headers = f"NATS/1.0\r\nNats-Msg-Id: evt_{n}\r\n\r\n".encode()
            parts.append(_hmsg(DIRECT, "stripe.events.invoice.paid", ack, headers, data))
        elif kind == 3:
            parts.append(_msg(DIRECT, "stripe.events.x", ack, data))
        elif kind == 4:  # a status: no reply subject, headers only
            parts.append(_hmsg(DIRECT, "_INBOX.p.3", "", b"NATS/1.0 404 No Messages\r\n\r\n", b""))
        elif kind == 5:
            parts.append(_msg(3, "other.subject", "_INBOX.r.1", data))
        elif kind == 6:
            parts.append(rng.choice([b"PING\r\n", b"PONG\r\n", b"+OK\r\n", b"-ERR 'x'\r\n"]))
        else:  # an INFO longer than a control line is expected to be (a big cluster's urls)
            urls = ",".join(
                f'"10.0.{i // 250}.{i % 250}:4222"' for i in range(rng.choice([1, 300]))
            )
            parts.append(f'INFO {{"server_id":"s{n}","connect_urls":[{urls}]}}\r\n'.encode())
    return b"".join(parts)


async def _feed(parser: Parser, wire: bytes, rng: random.Random) -> None:
    at = 0
    while at < len(wire):
        step = rng.choice([1, 2, 7, 100, 4096, 32768])
        await parser.parse(wire[at : at + step])
        at += step


@pytest.mark.parametrize("seed", range(12))
def test_the_same_frames_as_nats_py_with_the_direct_deliveries_to_the_sink(seed: int) -> None:
    wire = _wire(random.Random(seed), 300)

    theirs = _Recorder()
    asyncio.run(_feed(Parser(theirs), wire, random.Random(seed + 1000)))

    ours = _Recorder()
    parser = DeliveryParser(ours)  # type: ignore[arg-type]

    def sink(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        ours.frames.append(("msg", DIRECT, subject, reply, data, headers))

    parser.direct(DIRECT, sink)
    asyncio.run(_feed(parser, wire, random.Random(seed + 2000)))

    assert ours.frames == theirs.frames
    direct = [f for f in theirs.frames if f[0] == "msg" and f[1] == DIRECT and f[3]]
    assert len(direct) > 50  # the stream did exercise the direct path


class _Reconnecting(_Recorder):
    """Resets its parser after the first frame, as a reconnect does (unit test only)."""

    parser: Parser

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        await super()._process_msg(sid, subject, reply, data, headers)
        self.parser.reset()


@pytest.mark.parametrize("parser_class", [Parser, DeliveryParser])
def test_a_reset_while_handing_over_a_frame_drops_the_old_connections_bytes(
    parser_class: type[Parser],
) -> None:
    """A reconnect resets the parser from inside a callback: the rest of what the old
    connection sent is not read on, by nats-py's own parser or ours."""
    client = _Reconnecting()
    client.parser = parser_class(client)
    wire = _msg(3, "a", "_INBOX.r.1", b"1") + _msg(3, "b", "_INBOX.r.1", b"2")
    asyncio.run(client.parser.parse(wire))
    assert [f[4] for f in client.frames] == [b"1"]
    assert not client.parser.buf


def test_after_undirect_the_client_gets_the_deliveries_again() -> None:
    recorder = _Recorder()
    parser = DeliveryParser(recorder)  # type: ignore[arg-type]
    sunk: list[bytes] = []
    parser.direct(DIRECT, lambda subject, reply, data, headers: sunk.append(data))
    frame = _msg(DIRECT, "s", "$JS.ACK.S.c.1.1.1.1.0", b"{}")
    asyncio.run(parser.parse(frame))
    parser.undirect(DIRECT)
    asyncio.run(parser.parse(frame))
    assert sunk == [b"{}"]
    assert [f[4] for f in recorder.frames] == [b"{}"]


@pytest.mark.parametrize(
    "wire",
    [b"HELLO there\r\n", b"MSG s 7 notanumber\r\n", b"HMSG s 7 $JS.ACK.x 3\r\n"],
)
def test_unknown_or_malformed_lines_are_protocol_errors(wire: bytes) -> None:
    parser = DeliveryParser(_Recorder())  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        asyncio.run(parser.parse(wire))


def test_install_keeps_a_frame_split_across_the_swap() -> None:
    """A client's parser is replaced while a frame may be half read: the new one carries on."""

    client: Any = _Recorder()  # the parser calls back into its client
    client._ps = Parser(client)
    frame = _msg(3, "other", "_INBOX.r.1", b"0123456789")
    asyncio.run(client._ps.parse(frame[:20]))
    parser = install(client)
    assert install(client) is parser  # once per client
    asyncio.run(parser.parse(frame[20:]))
    assert client.frames == [("msg", 3, b"other", b"_INBOX.r.1", b"0123456789", None)]


def test_install_refuses_a_client_without_nats_pys_parser() -> None:
    class _Client:
        _ps = object()

    with pytest.raises(RuntimeError):
        install(_Client())  # type: ignore[arg-type]


def test_a_delivery_reads_its_headers_on_demand() -> None:
    raw = b"NATS/1.0\r\nNats-Msg-Id: evt_1\r\nX-Other:  a b \r\n\r\n"
    delivery = Delivery(b"stripe.events.x", b"$JS.ACK.S.c.1.2.3.4.0", b"{}", raw)
    assert delivery.headers == {"Nats-Msg-Id": "evt_1", "X-Other": "a b"}
    assert delivery.subject == "stripe.events.x" and delivery.reply.startswith("$JS.ACK.")
    assert Delivery(b"s", b"r", b"").headers is None
    assert parse_headers(b"NATS/1.0 404 No Messages\r\n\r\n") == {}
