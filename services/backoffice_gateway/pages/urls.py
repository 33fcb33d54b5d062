"""Page state lives in the URL: parse it, and build links that change one thing and keep
the rest (filters survive sorting and paging, sorting survives paging, ...).

Keyset paging has no page numbers: ``page`` is the opaque token of the current page and
``trail`` the tokens of the pages before it (so "Previous" works without server state).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time
from urllib.parse import urlencode

from flask import abort, request
from werkzeug.datastructures import MultiDict

from services.backoffice_gateway.errors import bad_request

PAGE_SIZES = (25, 50, 100)
DEFAULT_PAGE_SIZE = 50
#: Tokens kept for "Previous" (older ones are dropped: "First page" still works).
TRAIL_LIMIT = 20
MAX_PARAM = 200
#: Parameters that select a page of the current list: reset when filters or sorting change.
PAGING = ("page", "trail")


def arg(name: str, default: str = "") -> str:
    """One query parameter, trimmed; over-long or NUL-carrying values are a 400."""
    value = request.args.get(name, default)
    if len(value) > MAX_PARAM or "\x00" in value:
        raise bad_request(f"{name}: malformed", parameter=name)
    return value.strip()


def args_list(name: str, allowed: Iterable[str] | None = None) -> list[str]:
    """A multi-valued parameter (``?plan=a&plan=b``), deduplicated in order."""
    values: list[str] = []
    choices = set(allowed) if allowed is not None else None
    for raw in request.args.getlist(name):
        if len(raw) > MAX_PARAM or "\x00" in raw:
            raise bad_request(f"{name}: malformed", parameter=name)
        if choices is not None and raw not in choices:
            raise bad_request(f"{name}: unknown value", parameter=name)
        if raw not in values:
            values.append(raw)
    return values


def flag(name: str) -> bool | None:
    """``1``/``true`` -> True, ``0``/``false`` -> False, absent or empty -> None."""
    value = arg(name).lower()
    if value in ("", "any"):
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise bad_request(f"{name}: expected 1 or 0", parameter=name)


def choice(name: str, allowed: Iterable[str], default: str) -> str:
    value = arg(name) or default
    if value not in set(allowed):
        raise bad_request(f"{name}: unknown value", parameter=name)
    return value


def page_size() -> int:
    raw = arg("size")
    if not raw:
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or int(raw) not in PAGE_SIZES:
        raise bad_request(f"size: one of {', '.join(map(str, PAGE_SIZES))}", parameter="size")
    return int(raw)


def day(name: str, *, end: bool = False) -> datetime | None:
    """A ``YYYY-MM-DD`` date as the start of that UTC day (``end``: the start of the next)."""
    raw = arg(name)
    if not raw:
        return None
    try:
        parsed = datetime.strptime(raw, "%Y-%m-%d").date()
    except ValueError:
        raise bad_request(f"{name}: expected YYYY-MM-DD", parameter=name) from None
    moment = datetime.combine(parsed, time(0), tzinfo=UTC)
    if end:
        from datetime import timedelta

        moment += timedelta(days=1)
    return moment


def path_id(value: str) -> None:
    """An id from the path (account, user, event...): over-long or NUL-carrying ones name
    nothing, so 404 before any backend is asked."""
    if len(value) > MAX_PARAM or "\x00" in value:
        abort(404)


def trail() -> list[str]:
    raw = request.args.get("trail", "")
    if len(raw) > 8192:
        raise bad_request("trail: malformed", parameter="trail")
    return [t for t in raw.split(",") if t][-TRAIL_LIMIT:]


def with_args(changes: Mapping[str, object], *, keep_page: bool = False) -> str:
    """The current path and query with ``changes`` applied (``None`` or ``[]`` removes a
    parameter, a list sets a multi-valued one). Paging is reset unless ``keep_page``."""
    current: MultiDict[str, str] = MultiDict(request.args)
    if not keep_page:
        for name in PAGING:
            current.poplist(name)
    for name, value in changes.items():
        current.poplist(name)
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, list | tuple):
            for item in value:
                current.add(name, str(item))
        else:
            current.add(name, str(value))
    query = urlencode(list(current.items(multi=True)))
    return request.path + ("?" + query if query else "")


def next_page(token: str) -> str:
    """Link to the page after the current one (the current token joins the trail)."""
    current = request.args.get("page", "")
    steps = [*trail(), current] if current else [*trail(), ""]
    return with_args({"page": token, "trail": ",".join(steps)[-8000:] or None}, keep_page=True)


def previous_page() -> str | None:
    """Link to the page before the current one, or None on the first page."""
    if not request.args.get("page"):
        return None
    steps = trail()
    previous = steps[-1] if steps else ""
    return with_args(
        {"page": previous or None, "trail": ",".join(steps[:-1]) or None}, keep_page=True
    )


def sort_link(key: str, current: str, descending: bool) -> tuple[str, str]:
    """``(href, aria-sort)`` for a sortable column header: clicking the sorted column flips
    the direction, another column sorts ascending; filters are kept, paging restarts."""
    if key == current:
        return (
            with_args({"sort": key, "desc": None if descending else "1"}),
            "descending" if descending else "ascending",
        )
    return with_args({"sort": key, "desc": None}), "none"


def csv_link(api_path: str, params: Mapping[str, object]) -> str:
    """The CSV export of a list: the JSON API's endpoint with ``format=csv`` and the list's
    current filters (never its page: the export has every matching row)."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if value is None or value == "" or value == [] or value is False:
            continue
        if isinstance(value, list | tuple):
            pairs.extend((name, str(v)) for v in value)
        elif value is True:
            pairs.append((name, "true"))
        else:
            pairs.append((name, str(value)))
    pairs.append(("format", "csv"))
    return f"{api_path}?{urlencode(pairs)}"
