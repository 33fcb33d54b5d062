"""Plain data shared by every view model: money, times, pages, and their JSON form.

View models are dataclasses of these; the JSON API serialises them with :func:`jsonable` and
gwui's pages render the very same objects, so a page and its JSON never disagree.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar

from billing.common.v1 import common_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

T = TypeVar("T")


@dataclass(frozen=True)
class Money:
    """Integer minor units of an ISO currency (formatting by exponent is gwui's job)."""

    amount_minor: int
    currency: str


def money(msg: common_pb2.Money | None) -> Money | None:
    """A Money, or None for an unset message field (callers pass ``None`` when unset)."""
    if msg is None or not msg.currency:
        return None
    return Money(int(msg.amount_minor), msg.currency)


def field_money(parent: Message, name: str) -> Money | None:
    """The Money field ``name`` of ``parent``, None when unset."""
    if not parent.HasField(name):
        return None
    return money(getattr(parent, name))


def field_time(parent: Message, name: str) -> datetime | None:
    """The Timestamp field ``name`` of ``parent`` as an aware UTC datetime, None when unset."""
    if not parent.HasField(name):
        return None
    stamp: Timestamp = getattr(parent, name)
    return stamp.ToDatetime(tzinfo=UTC)


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list with the token of the next (empty on the last page)."""

    items: list[T]
    next_page_token: str = ""
    total_count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    #: total_count is only a lower bound (the ledger stopped counting a broad search there):
    #: shown as "N+", never as the exact total
    total_is_lower_bound: bool = False


def jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses to objects, times to ISO-8601 UTC."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset) and not isinstance(value, bytes | bytearray):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def page_request(page_size: int, page_token: str) -> common_pb2.PageRequest:
    return common_pb2.PageRequest(page_size=page_size, page_token=page_token)


def period(start: datetime | None, end: datetime | None) -> common_pb2.Period:
    result = common_pb2.Period()
    if start is not None:
        result.start.CopyFrom(timestamp(start))
    if end is not None:
        result.end.CopyFrom(timestamp(end))
    return result
