"""Validated query inputs: requests become these dataclasses or ``InvalidArgument``.

Paging
------
Every list uses **keyset** tokens (``services.common.paging``): the token is the sort key of
the last row served plus the sort it belongs to, so pages stay stable while rows are added
(offset paging would skip or repeat rows) and a token cannot be replayed under another sort
or direction (INVALID_ARGUMENT). ``total_count`` is the number of rows matching the filters,
independent of the page.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from services.common.paging import BadPageToken, decode_token, encode_token, page_size
from services.common.timeconv import from_micros, micros
from services.ledger.queries.errors import InvalidArgument
from services.ledger.queries.lenses import Lens

PERIOD_DAYS = (7, 30, 90)
DEFAULT_PERIOD_DAYS = 30
DEFAULT_RECENT = 10
MAX_RECENT = 100
MAX_FILTER_VALUES = 50
MAX_TEXT = 200
SUBSCRIPTION_STATUSES = frozenset(
    {
        "",  # accounts without any subscription
        "active",
        "trialing",
        "past_due",
        "unpaid",
        "canceled",
        "incomplete",
        "incomplete_expired",
        "paused",
    }
)


def utc_day(value: datetime) -> date:
    return value.astimezone(UTC).date()


def day_start(value: date) -> datetime:
    return datetime.combine(value, time(0), UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """A dashboard period: ``days`` whole UTC days ending with ``as_of``'s day, and the prior."""

    as_of: datetime
    days: int

    @property
    def end_day(self) -> date:  # exclusive
        return utc_day(self.as_of) + timedelta(days=1)

    @property
    def start_day(self) -> date:
        return self.end_day - timedelta(days=self.days)

    @property
    def prior_start_day(self) -> date:
        return self.start_day - timedelta(days=self.days)

    @property
    def start(self) -> datetime:
        return day_start(self.start_day)

    @property
    def end(self) -> datetime:
        return day_start(self.end_day)

    @property
    def prior_start(self) -> datetime:
        return day_start(self.prior_start_day)

    def days_of_period(self) -> list[date]:
        return [self.start_day + timedelta(days=i) for i in range(self.days)]


def window(period_days: int, as_of: datetime | None, now: datetime) -> Window:
    days = period_days or DEFAULT_PERIOD_DAYS
    if days not in PERIOD_DAYS:
        raise InvalidArgument(f"period_days must be one of {PERIOD_DAYS}, got {period_days}")
    return Window(as_of or now, days)


def recent_limit(value: int) -> int:
    if value < 0 or value > MAX_RECENT:
        raise InvalidArgument(f"recent_limit must be within [0, {MAX_RECENT}]")
    return value or DEFAULT_RECENT


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open [start, end) filter; either bound may be open."""

    start: datetime | None = None
    end: datetime | None = None


def time_range(start: datetime | None, end: datetime | None) -> TimeRange:
    if start is not None and end is not None and end <= start:
        raise InvalidArgument("period.end must be after period.start")
    return TimeRange(start, end)


def _size(requested: int) -> int:
    try:
        return page_size(requested)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from exc


def _token(token: str) -> list[object] | None:
    try:
        return decode_token(token)
    except BadPageToken as exc:
        raise InvalidArgument(str(exc)) from exc


def text_filter(value: str, name: str) -> str | None:
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise InvalidArgument(f"{name} is longer than {MAX_TEXT} characters")
    return value or None


# ------------------------------------------------------------------------------ accounts
class AccountSort(enum.StrEnum):
    NAME = "name"
    PLAN = "plan"
    MRR = "mrr"
    RENEWAL = "renewal"
    STATUS = "status"
    CREATED = "created"


# How each sort key travels in a page token (None = the NULL sort position).
_TOKEN_KINDS = {
    AccountSort.NAME: "text",
    AccountSort.PLAN: "text",
    AccountSort.STATUS: "text",
    AccountSort.MRR: "decimal",
    AccountSort.RENEWAL: "time",
    AccountSort.CREATED: "time",
}


@dataclass(frozen=True, slots=True)
class AccountListQuery:
    search: str | None
    plans: tuple[str, ...]
    statuses: tuple[str, ...]
    drift_detected: bool | None
    unsynced: bool | None
    sort: AccountSort
    descending: bool
    page_size: int
    after: tuple[object, str] | None  # (sort value or None, account_id)


def account_list_query(
    *,
    search: str,
    plans: list[str],
    statuses: list[str],
    drift_detected: bool | None,
    unsynced: bool | None,
    sort_by: str,
    descending: bool,
    requested_page_size: int,
    page_token: str,
) -> AccountListQuery:
    try:
        sort = AccountSort(sort_by.strip().lower() or AccountSort.NAME.value)
    except ValueError:
        allowed = ", ".join(s.value for s in AccountSort)
        raise InvalidArgument(f"unknown sort_by {sort_by!r}; one of: {allowed}") from None
    if len(plans) > MAX_FILTER_VALUES or len(statuses) > MAX_FILTER_VALUES:
        raise InvalidArgument(f"at most {MAX_FILTER_VALUES} plans and statuses")
    if any(len(p) > MAX_TEXT for p in plans):
        raise InvalidArgument("plan names are at most 200 characters")
    bad = sorted(set(statuses) - SUBSCRIPTION_STATUSES)
    if bad:
        raise InvalidArgument(f"unknown statuses: {bad}")
    size = _size(requested_page_size)
    key = _token(page_token)
    after: tuple[object, str] | None = None
    if key is not None:
        try:
            token_sort, token_desc, value, account_id = key
            if token_sort != sort.value or bool(token_desc) != descending:
                raise InvalidArgument("page_token belongs to another sort order")
            after = (_decode_value(sort, value), str(account_id))
        except (ValueError, TypeError, InvalidOperation) as exc:
            raise InvalidArgument("malformed page_token") from exc
    return AccountListQuery(
        search=text_filter(search, "search"),
        plans=tuple(dict.fromkeys(plans)),
        statuses=tuple(dict.fromkeys(statuses)),
        drift_detected=drift_detected,
        unsynced=unsynced,
        sort=sort,
        descending=descending,
        page_size=size,
        after=after,
    )


def _decode_value(sort: AccountSort, value: object) -> object:
    if value is None:
        return None
    kind = _TOKEN_KINDS[sort]
    if kind == "text":
        if not isinstance(value, str):
            raise ValueError("text key expected")
        return value
    if kind == "decimal":
        return Decimal(str(value))
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("time key expected")
    return from_micros(value)


def account_token(q: AccountListQuery, value: object, account_id: str) -> str:
    if isinstance(value, datetime):
        encoded: object = micros(value)
    elif isinstance(value, Decimal):
        encoded = str(value)
    else:
        encoded = value
    return encode_token([q.sort.value, q.descending, encoded, account_id])


# ------------------------------------------------------------------------------ events / invoices
@dataclass(frozen=True, slots=True)
class EventListQuery:
    account_id: str | None
    period: TimeRange
    lens: Lens
    include_noop: bool
    oldest_first: bool
    page_size: int
    after: tuple[datetime, str] | None


class InvoiceLens(enum.StrEnum):
    ALL = "all"
    INVOICES = "invoices"
    REVERSALS = "reversals"


@dataclass(frozen=True, slots=True)
class InvoiceListQuery:
    account_id: str | None
    period: TimeRange
    lens: InvoiceLens
    oldest_first: bool
    page_size: int
    after: tuple[datetime, str] | None


def time_keyset(page_token: str, oldest_first: bool, kind: str) -> tuple[datetime, str] | None:
    """Decode ``[kind, oldest_first, micros, id]`` tokens of the time-ordered lists."""
    key = _token(page_token)
    if key is None:
        return None
    try:
        token_kind, token_oldest, at, row_id = key
        if token_kind != kind or bool(token_oldest) != oldest_first:
            raise InvalidArgument("page_token belongs to another list or order")
        if isinstance(at, bool) or not isinstance(at, int) or not isinstance(row_id, str):
            raise ValueError("bad key")
        return from_micros(at), row_id
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidArgument("malformed page_token") from exc


def time_token(kind: str, oldest_first: bool, at: datetime, row_id: str) -> str:
    return encode_token([kind, oldest_first, micros(at), row_id])


def event_list_query(
    *,
    account_id: str,
    period: TimeRange,
    lens: Lens,
    include_noop: bool,
    oldest_first: bool,
    requested_page_size: int,
    page_token: str,
) -> EventListQuery:
    return EventListQuery(
        account_id=text_filter(account_id, "account_id"),
        period=period,
        lens=lens,
        include_noop=include_noop,
        oldest_first=oldest_first,
        page_size=_size(requested_page_size),
        after=time_keyset(page_token, oldest_first, "events"),
    )


def invoice_list_query(
    *,
    account_id: str,
    period: TimeRange,
    lens: InvoiceLens,
    oldest_first: bool,
    requested_page_size: int,
    page_token: str,
) -> InvoiceListQuery:
    return InvoiceListQuery(
        account_id=text_filter(account_id, "account_id"),
        period=period,
        lens=lens,
        oldest_first=oldest_first,
        page_size=_size(requested_page_size),
        after=time_keyset(page_token, oldest_first, "invoices"),
    )


__all__ = [
    "PERIOD_DAYS",
    "AccountListQuery",
    "AccountSort",
    "EventListQuery",
    "InvoiceLens",
    "InvoiceListQuery",
    "TimeRange",
    "Window",
    "account_list_query",
    "account_token",
    "day_start",
    "event_list_query",
    "invoice_list_query",
    "recent_limit",
    "time_range",
    "time_token",
    "utc_day",
    "window",
]
