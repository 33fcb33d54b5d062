"""Turn a verified webhook body into the archive's row, or say precisely why it is not one.

Only the envelope is inspected (id, type, created, api_version, livemode, account), plus the
Stripe customer the event is about (``stripe_customer_id``, an indexed column for the
back-office's webhook log filtered by account; never a reason to refuse an event): the
archive keeps every event whatever its type or API version, and classification is the
ledger's job. The body itself is stored untouched.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson


class InvalidEnvelope(ValueError):
    """The body is not a Stripe event object; the message says which part is wrong."""


@dataclass(slots=True)
class IncomingEvent:
    """An event ready to archive: exact bytes plus the envelope fields we index on."""

    # Not frozen (issue 12): a frozen dataclass's __init__ sets every field through
    # object.__setattr__ (3-6 us for these nine fields per webhook on the bench machine, 1.2-1.3
    # unfrozen); made once per webhook, never mutated or hashed.

    event_id: str
    event_type: str
    api_version: str | None
    stripe_created_at: datetime
    livemode: bool
    account: str | None
    payload: bytes
    payload_sha256: bytes
    stripe_customer_id: str | None = None


UTF8_BOM = b"\xef\xbb\xbf"
MAX_TEXT = 255
# 9999-12-31T23:59:59Z: the last second a datetime (and the archive's index) can represent.
MAX_CREATED = 253_402_300_799


def _checked_text(name: str, value: str) -> str:
    """A text column's value: PostgreSQL text cannot hold NUL, nor UTF-8 a lone surrogate."""
    if len(value) > MAX_TEXT:
        raise InvalidEnvelope(f'"{name}" is longer than {MAX_TEXT} characters')
    if "\x00" in value:
        raise InvalidEnvelope(f'"{name}" contains a NUL character')
    if not value.isascii():
        try:  # strict UTF-8 refuses exactly the surrogates (in C, not a loop per character)
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidEnvelope(
                f'"{name}" contains a lone surrogate (not valid Unicode)'
            ) from exc
    return value


def _required_text(document: dict[str, object], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidEnvelope(f'"{name}" must be a non-empty string')
    return _checked_text(name, value)


def _optional_text(document: dict[str, object], name: str) -> str | None:
    """The field when it is a string (checked), else None (absent or null)."""
    value = document.get(name)
    return _checked_text(name, value) if isinstance(value, str) else None


def customer_of(data_object: dict[str, object]) -> str | None:
    """The Stripe customer ``data.object`` is about: its ``customer`` (an id, or an expanded
    object's id), or its own id when it is a customer. Anything else (absent, not a string,
    empty, or a value the text column cannot hold) is None: this column only helps finding
    events, so it never refuses one. Migration 0013 backfills with the same rule in SQL."""
    value = data_object.get("id") if data_object.get("object") == "customer" else (
        data_object.get("customer")
    )
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not value:
        return None
    try:
        return _checked_text("customer", value)
    except InvalidEnvelope:
        return None


def parse_event(payload: bytes) -> IncomingEvent:
    """Validate the envelope of ``payload`` and return the row to archive."""
    if payload.startswith(UTF8_BOM):
        # One rule for ingest and ledger: JSON must not start with a byte order mark (RFC 8259
        # section 8.1; Stripe never sends one). Refused here, the ledger never sees one.
        raise InvalidEnvelope("body starts with a byte order mark (JSON must not)")
    event = _envelope_only(payload)
    return event if event is not None else full_parse(payload)


def full_parse(payload: bytes) -> IncomingEvent:
    """The whole document parsed, then the envelope checked: every refusal's answer comes from
    here (and, as the reference, tests/ingest/test_envelope_fast.py compares with it)."""
    try:
        # orjson (~3x faster, issue 12) accepts a subset of what json.loads accepts (strict
        # UTF-8, no lone surrogates, NaN) and gives the same document for it; anything it
        # refuses goes through json.loads, so the answers stay as they were.
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        document = _standard_loads(payload)
    return event_from_document(document, payload)


class _DataObject(msgspec.Struct):
    """The three fields of ``data.object`` the archive row needs (see customer_of)."""

    object: Any = None
    id: Any = None
    customer: Any = None


class _Data(msgspec.Struct):
    object: _DataObject


class _Envelope(msgspec.Struct):
    """The envelope's fields; absent and null both decode to None, as ``dict.get`` sees them."""

    object: Any = None
    id: Any = None
    type: Any = None
    created: Any = None
    api_version: Any = None
    livemode: Any = None
    account: Any = None
    data: _Data | None = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)


def _envelope_only(payload: bytes) -> IncomingEvent | None:
    """The row from the envelope's fields alone, or None to take the full parse.

    Why (issue 12): the archive stores the raw bytes, so building the whole document (a
    dict per object, a str per value of a ~3 KB event) only to read eight fields was the
    ingest's largest parsing cost; msgspec checks the whole text as JSON but builds only the
    fields named here (measured ~3x faster than ``orjson.loads`` on the bench's event). It
    serves ONLY events it accepts and that pass ``event_from_document``'s checks: anything
    else (msgspec refuses what orjson or json.loads might accept, e.g. a lone surrogate,
    NaN, ``data`` not an object) returns None and takes the full parse, so every refusal and
    its message stay the full parse's. msgspec does not check UTF-8 inside the strings it
    skips, hence the explicit check (free for ASCII bodies); duplicate keys resolve to the
    last, escaped keys are unescaped, as in json.loads (tests/ingest/test_envelope_fast.py).
    """
    try:
        envelope = _ENVELOPE.decode(payload)
        if not payload.isascii():
            payload.decode("utf-8")
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    if envelope.data is None:
        return None
    data_object = envelope.data.object
    document = {
        "object": envelope.object,
        "id": envelope.id,
        "type": envelope.type,
        "created": envelope.created,
        "api_version": envelope.api_version,
        "livemode": envelope.livemode,
        "account": envelope.account,
        "data": {
            "object": {
                "object": data_object.object,
                "id": data_object.id,
                "customer": data_object.customer,
            }
        },
    }
    try:
        return event_from_document(document, payload)
    except InvalidEnvelope:
        return None


def _standard_loads(payload: bytes) -> object:
    try:
        # Decoded as UTF-8 explicitly: json.loads would guess UTF-16/32 from raw bytes.
        return json.loads(payload.decode("utf-8"))
    except RecursionError as exc:
        raise InvalidEnvelope("body is nested too deeply") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEnvelope(f"body is not JSON: {str(exc)[:200]}") from exc


def event_from_document(document: object, payload: bytes) -> IncomingEvent:
    """Build the row from an already-parsed document and the bytes it was parsed from."""
    if not isinstance(document, dict):
        raise InvalidEnvelope("body is not a JSON object")
    if document.get("object") != "event":
        raise InvalidEnvelope('"object" must be "event"')
    event_id = _required_text(document, "id")
    event_type = _required_text(document, "type")
    created = document.get("created")
    if isinstance(created, bool) or not isinstance(created, int) or created < 0:
        raise InvalidEnvelope('"created" must be a Unix timestamp')
    if created > MAX_CREATED:
        raise InvalidEnvelope('"created" is after the year 9999')
    data = document.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise InvalidEnvelope('"data.object" must be an object')
    data_object = data["object"]
    return IncomingEvent(
        event_id=event_id,
        event_type=event_type,
        api_version=_optional_text(document, "api_version"),
        stripe_created_at=datetime.fromtimestamp(created, tz=UTC),
        livemode=document.get("livemode") is True,
        account=_optional_text(document, "account"),
        payload=payload,
        payload_sha256=hashlib.sha256(payload).digest(),
        stripe_customer_id=customer_of(data_object),
    )
