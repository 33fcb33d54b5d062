"""The envelope parser reads with orjson first and falls back to json.loads (issue 12): the
answer for every body must stay what json.loads alone gave."""

from __future__ import annotations

import json

import pytest

from services.ingest.envelope import InvalidEnvelope, parse_event


def _body(object_json: str, event_id: str = '"evt_1"') -> bytes:
    envelope = (
        '"object": "event", "type": "invoice.paid", "created": 1700000000,'
        ' "api_version": "2020-08-27"'
    )
    return f'{{"id": {event_id}, {envelope}, "data": {{"object": {object_json}}}}}'.encode()


@pytest.mark.parametrize(
    "object_json",
    [
        '{"id": "in_1", "total": 1200, "lines": [1.5, 2e3, null, true]}',
        '{"id": "in_1", "description": "caf\\u00e9 \u00e9\\n"}',
        '{"id": "in_1", "x": 1, "x": 2}',  # duplicate key: the last one, both ways
        '{"id": "in_1", "ratio": NaN}',  # json.loads only (orjson refuses)
        '{"id": "in_1", "big": 123456789012345678901234567890}',  # beyond 64 bits
        '{"id": "in_1", "note": "\\ud800 alone"}',  # a lone surrogate outside the envelope
    ],
)
def test_documents_json_loads_accepts_are_accepted_unchanged(object_json: str) -> None:
    body = _body(object_json)
    event = parse_event(body)
    assert event.event_id == "evt_1"
    assert event.payload == body  # stored untouched
    assert json.loads(body)["data"]["object"]["id"] == "in_1"


def test_a_lone_surrogate_in_the_envelope_is_refused_by_name() -> None:
    with pytest.raises(InvalidEnvelope, match='"id" contains a lone surrogate'):
        parse_event(_body('{"id": "in_1"}', event_id='"evt_\\udc00"'))


def test_non_ascii_envelope_text_is_accepted() -> None:
    assert parse_event(_body('{"id": "in_1"}', event_id='"evt_\u00e9"')).event_id == "evt_\u00e9"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b'{"id": "evt_1", "x": "\xff"}', "body is not JSON"),  # not UTF-8
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"[1, 2]", "body is not a JSON object"),
    ],
)
def test_bodies_json_loads_refuses_keep_their_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidEnvelope, match=reason):
        parse_event(body)
