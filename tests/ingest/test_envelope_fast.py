"""The envelope-only parse (msgspec, issue 12) gives exactly what the full parse gives.

``parse_event`` reads only the envelope's fields when it can and takes ``full_parse``
otherwise; the fast path must never accept a body the full parse refuses, nor give another
row. Checked on every real fixture, on JSON's corner cases and on thousands of seeded
one-byte mutations of real events.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from services.ingest.envelope import (
    IncomingEvent,
    InvalidEnvelope,
    _envelope_only,
    full_parse,
    parse_event,
)
from tests.conftest import fixtures_dir


def outcome(parse: Callable[[bytes], IncomingEvent], body: bytes) -> IncomingEvent | str:
    try:
        return parse(body)
    except InvalidEnvelope as exc:
        return f"refused: {exc}"


def fixture_bodies() -> list[bytes]:
    bodies = [path.read_bytes() for path in sorted(fixtures_dir().rglob("*.json"))]
    assert bodies, f"no fixtures under {fixtures_dir()}"
    return bodies


def test_every_real_fixture_takes_the_fast_path_with_the_same_row() -> None:
    for body in fixture_bodies():
        reference = outcome(full_parse, body)
        if isinstance(reference, str):
            assert _envelope_only(body) is None
            continue
        fast = _envelope_only(body)
        assert fast is not None, body[:200]  # the fast path is really taken
        assert fast == reference


def _body(envelope: str, data_object: str = '{"id": "in_1", "object": "invoice"}') -> bytes:
    text = '{"object": "event", ' + envelope + ', "data": {"object": ' + data_object + "}}"
    return text.encode()


_ENVELOPE = '"id": "evt_1", "type": "invoice.paid", "created": 1700000000'

CORNER_CASES = [
    _body(_ENVELOPE),
    _body(_ENVELOPE + ', "id": "evt_2"'),  # duplicate key: the last
    _body(_ENVELOPE + ', "\\u0069d": "evt_esc"'),  # an escaped key is the same key
    _body(_ENVELOPE + ', "x": "\\ud800"'),  # lone surrogate outside the envelope
    _body('"id": "evt_\\udc00", "type": "t", "created": 1'),  # ... and inside it
    _body(_ENVELOPE + ', "x": NaN'),
    _body(_ENVELOPE + ', "x": 1e999'),
    _body(_ENVELOPE + ', "x": 123456789012345678901234567890'),
    _body('"id": "evt_1", "type": "t", "created": 123456789012345678901234567890'),
    _body('"id": "evt_1", "type": "t", "created": 18446744073709551616'),
    _body('"id": "evt_1", "type": "t", "created": 1.0'),
    _body('"id": "evt_1", "type": "t", "created": -1'),
    _body('"id": "evt_1", "type": "t", "created": true'),
    _body('"id": "evt_1", "type": "t", "created": 253402300800'),
    _body('"id": "", "type": "t", "created": 1'),
    _body('"id": "evt_\\u0000", "type": "t", "created": 1'),
    _body('"id": "evt_1", "type": "t", "created": 1, "livemode": 1'),
    _body('"id": "evt_1", "type": "t", "created": 1, "livemode": true, "account": "acct_1"'),
    _body('"id": "evt_1", "type": "t", "created": 1, "account": 5, "api_version": null'),
    _body(_ENVELOPE, '{"object": "customer", "id": "cus_self"}'),
    _body(_ENVELOPE, '{"customer": {"id": "cus_expanded", "object": "customer"}}'),
    _body(_ENVELOPE, '{"customer": ""}'),
    _body(_ENVELOPE, '[]'),
    _body(_ENVELOPE, "null"),
    _body(_ENVELOPE, '{"id": 1}, "data": {"object": {"id": "second"}}'),
    _body(_ENVELOPE, '5}, "data": {"object": {"id": "second_wins"}'),
    _body(_ENVELOPE + ', "x": "caf\u00e9"'),
    _body(_ENVELOPE).replace(b"invoice.paid", b"invoice.\xffpaid"),
    _body(_ENVELOPE).replace(b'"in_1"', b'"in_\xff"'),  # invalid UTF-8 msgspec would skip
    _body(_ENVELOPE) + b" \n",
    _body(_ENVELOPE) + b" x",
    b"\x0c" + _body(_ENVELOPE),
    b'{"object": "event", "id": "evt_1", "type": "t", "created": 1}',
    b'{"object": "event", "id": "evt_1", "type": "t", "created": 1, "data": null}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a": ' + b"[" * 5_000 + b"]" * 5_000 + b', "object": "event"}',
    b"",
    b"null",
]


@pytest.mark.parametrize("body", CORNER_CASES)
def test_corner_cases_answer_as_the_full_parse(body: bytes) -> None:
    assert outcome(parse_event, body) == outcome(full_parse, body)


def test_one_byte_mutations_of_real_events_answer_as_the_full_parse() -> None:
    rng = random.Random(12)
    bodies = [b for b in fixture_bodies() if len(b) < 20_000][:40]
    alphabet = b'{}[]",:\\0123456789eE.-+ \t\nnulltruefalse\x00\x7f\xc3\xa9\xff\xed\xa0\x80'
    fast_taken = 0
    for body in bodies:
        for _ in range(150):
            mutated = bytearray(body)
            at = rng.randrange(len(mutated))
            choice = rng.randrange(3)
            if choice == 0:
                mutated[at] = rng.choice(alphabet)
            elif choice == 1:
                del mutated[at]
            else:
                mutated.insert(at, rng.choice(alphabet))
            data = bytes(mutated)
            expected = outcome(full_parse, data)
            assert outcome(parse_event, data) == expected, data
            fast_taken += _envelope_only(data) is not None
    assert fast_taken > 1_000  # most mutations stay valid JSON and take the fast path
