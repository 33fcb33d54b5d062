"""Turning view models into answers: JSON objects, and CSV for every list.

CSV flattens each row's fields: money becomes ``<name>_minor`` and ``<name>_currency``, lists
are joined with ``;``, times are ISO-8601 UTC. Cells that a spreadsheet would run as a formula
(starting with ``=``, ``+``, ``-``, ``@``, tab or CR, except plain numbers) get a leading
apostrophe.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Iterable
from typing import Any

import orjson
from flask import Response

from services.backoffice_gateway.views.common import Money, Page, jsonable

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


# orjson writes dataclasses and aware datetimes itself (in C): the view models go out as they
# are, with the same shapes ``jsonable`` gives (times as ISO-8601 with a Z).
_ORJSON = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def _fallback(value: Any) -> Any:
    return jsonable(value)


def json_response(value: Any, status: int = 200) -> Response:
    if isinstance(value, Page):
        body: Any = {
            "items": value.items,
            "next_page_token": value.next_page_token,
            "total_count": value.total_count,
            "total_count_is_lower_bound": value.total_is_lower_bound,
            **value.extra,
        }
    else:
        body = value
    return Response(orjson.dumps(body, default=_fallback, option=_ORJSON), status=status,
                    mimetype="application/json")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = jsonable(value)
    if isinstance(text, list):
        text = ";".join(str(_cell(v)) for v in text)
    elif isinstance(text, dict):
        text = ";".join(f"{k}={v}" for k, v in text.items())
    text = str(text)
    if text and text[0] in "=+-@\t\r" and not _NUMBER.match(text):
        text = "'" + text
    return text


def flatten(row: Any) -> dict[str, str]:
    result: dict[str, str] = {}
    if not dataclasses.is_dataclass(row):
        return {"value": _cell(row)}
    for f in dataclasses.fields(row):
        value = getattr(row, f.name)
        if isinstance(value, Money) or (value is None and "money" in str(f.type).lower()):
            result[f"{f.name}_minor"] = "" if value is None else str(value.amount_minor)
            result[f"{f.name}_currency"] = "" if value is None else value.currency
        elif dataclasses.is_dataclass(value):
            for key, cell in flatten(value).items():
                result[f"{f.name}_{key}"] = cell
        else:
            result[f.name] = _cell(value)
    return result


def csv_response(rows: Iterable[Any], filename: str) -> Response:
    buffer = io.StringIO()
    writer: Any = None
    for row in rows:
        flat = flatten(row)
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(flat), extrasaction="ignore")
            writer.writeheader()
        writer.writerow(flat)
    response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response
