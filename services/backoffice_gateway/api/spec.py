"""Declared endpoints: one description per route serves parsing, checking and OpenAPI.

Each JSON endpoint declares its query parameters and body fields (:class:`Param`); requests
are parsed against that declaration (a bad value is 400 naming the parameter), and
``/api/v1/openapi.json`` is generated from the same declarations, so the document cannot
drift from what the code accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from werkzeug.datastructures import MultiDict

from services.backoffice_gateway.errors import bad_request

MAX_TEXT = 200
MAX_ITEMS = 50
PAGE_TOKEN_MAX = 4096


@dataclass(frozen=True)
class Param:
    name: str
    type: str = "string"  # string | integer | boolean | array | date-time | number
    description: str = ""
    enum: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    default: Any = None
    required: bool = False
    max_length: int = MAX_TEXT
    items_enum: tuple[str, ...] | None = None  # arrays of strings from a fixed set
    items_type: str = "string"  # string | integer


def page_params(default_size: int = 50) -> tuple[Param, ...]:
    return (
        Param("page_size", "integer", "rows per page", minimum=1, maximum=500,
              default=default_size),
        Param("page_token", "string", "opaque token from the previous page's next_page_token",
              default="", max_length=PAGE_TOKEN_MAX),
    )


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str  # Flask rule under /api/v1, e.g. /accounts/<account_id>
    method: str
    summary: str
    tag: str
    params: tuple[Param, ...] = ()
    body: tuple[Param, ...] = ()
    path_params: tuple[Param, ...] = ()
    admin: bool = False
    csv: bool = False
    public: bool = False
    description: str = ""
    hidden_without_billing: bool = True
    extra_responses: dict[int, str] = field(default_factory=dict)

    @property
    def openapi_path(self) -> str:
        return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", self.path)


_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


def _text(p: Param, raw: str) -> str:
    if len(raw) > p.max_length:
        raise bad_request(f"{p.name}: at most {p.max_length} characters", parameter=p.name)
    if "\x00" in raw:
        raise bad_request(f"{p.name}: NUL character not allowed", parameter=p.name)
    if p.enum is not None and raw not in p.enum:
        raise bad_request(f"{p.name}: one of {', '.join(p.enum)}", parameter=p.name)
    return raw


def parse_datetime(raw: str) -> datetime:
    """ISO-8601 date or date-time; a date is midnight UTC, a naive time is UTC."""
    try:
        if len(raw) == 10:
            d = date.fromisoformat(raw)
            value = datetime(d.year, d.month, d.day, tzinfo=UTC)
        else:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError("not an ISO-8601 date or date-time") from exc
    if not 1970 <= value.year <= 9998:
        raise ValueError("outside 1970 .. 9998")
    return value


def _scalar(p: Param, raw: Any) -> Any:
    kind = p.type
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _BOOL_TRUE:
            return True
        if text in _BOOL_FALSE:
            return False
        raise bad_request(f"{p.name}: true or false", parameter=p.name)
    if kind == "integer":
        if isinstance(raw, bool):
            raise bad_request(f"{p.name}: an integer", parameter=p.name)
        try:
            value = int(raw) if isinstance(raw, int) else int(str(raw).strip(), 10)
        except ValueError:
            raise bad_request(f"{p.name}: an integer", parameter=p.name) from None
        low = p.minimum if p.minimum is not None else -(2**63)
        high = p.maximum if p.maximum is not None else 2**63 - 1
        if not low <= value <= high:
            raise bad_request(f"{p.name}: between {low} and {high}", parameter=p.name)
        return value
    if kind == "date-time":
        if not isinstance(raw, str):
            raise bad_request(f"{p.name}: an ISO-8601 date-time", parameter=p.name)
        try:
            return parse_datetime(_text(p, raw))
        except ValueError as exc:
            raise bad_request(f"{p.name}: {exc}", parameter=p.name) from None
    if not isinstance(raw, str):
        raise bad_request(f"{p.name}: a string", parameter=p.name)
    return _text(p, raw)


def _array(p: Param, values: list[Any]) -> list[Any]:
    if len(values) > MAX_ITEMS:
        raise bad_request(f"{p.name}: at most {MAX_ITEMS} values", parameter=p.name)
    if p.items_type == "integer":
        item = Param(p.name, "integer", minimum=p.minimum, maximum=p.maximum)
        return [_scalar(item, raw) for raw in values]
    result = []
    for raw in values:
        if not isinstance(raw, str):
            raise bad_request(f"{p.name}: strings", parameter=p.name)
        text = _text(Param(p.name, max_length=p.max_length), raw)
        if p.items_enum is not None and text not in p.items_enum:
            raise bad_request(f"{p.name}: each one of {', '.join(p.items_enum)}",
                              parameter=p.name)
        result.append(text)
    return result


def parse_query(params: tuple[Param, ...], args: MultiDict[str, str]) -> dict[str, Any]:
    """Declared query parameters; unknown ones are ignored (links may carry UI state)."""
    result: dict[str, Any] = {}
    for p in params:
        if p.type == "array":
            result[p.name] = _array(p, args.getlist(p.name))
            continue
        values = args.getlist(p.name)
        if len(values) > 1:
            raise bad_request(f"{p.name}: given more than once", parameter=p.name)
        if not values or (values[0] == "" and p.type != "string"):
            if p.required:
                raise bad_request(f"{p.name}: required", parameter=p.name)
            result[p.name] = p.default
            continue
        result[p.name] = _scalar(p, values[0])
    return result


def parse_body(params: tuple[Param, ...], body: Any) -> dict[str, Any]:
    """A JSON object body (or form fields) against the declared fields."""
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise bad_request("the body must be a JSON object")
    result: dict[str, Any] = {}
    for p in params:
        if p.name not in body or body[p.name] is None:
            if p.required:
                raise bad_request(f"{p.name}: required", parameter=p.name)
            result[p.name] = p.default
            continue
        raw = body[p.name]
        if p.type == "array":
            if not isinstance(raw, list):
                raise bad_request(f"{p.name}: an array", parameter=p.name)
            result[p.name] = _array(p, raw)
            continue
        result[p.name] = _scalar(p, raw)
    return result


Handler = Callable[[dict[str, Any]], Any]
