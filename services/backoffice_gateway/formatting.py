"""Presentation of money and time for the back-office pages (pure functions, no Flask).

Why a module of its own: every page shows amounts and dates, and an operator comparing two
pages must never see the same figure written two ways. The ledger sends exact integer minor
units with an ISO-4217 code; this module is the only place that turns them into text.

Money
-----
* The number of decimals is the currency's exponent as Stripe uses it: 0 for the zero-decimal
  currencies (JPY: the minor unit *is* the yen), 3 for BHD, JOD, KWD, OMR, TND, otherwise 2.
  The gateway may not import the ledger's internals, so the two short lists live here too; a
  unit test pins both (a currency in the wrong list would show 100 times too much).
* Thousands are grouped with a comma, the sign comes first, and the code follows the number
  (``-1,234.56 USD``): unambiguous in every currency, whatever the operator's locale.
* A native amount that is not in the platform currency gets the converted total beside it
  (``1,000 JPY (6.70 USD)``) when the ledger sent one; without a rate nothing is guessed.

Time
----
* Every time is shown in UTC (``2026-12-05 22:54 UTC``). When the operator's offset from UTC
  is known (the browser reports it in a cookie, see ``static/app.js``) the local wall time is
  added in brackets with its offset, so a screenshot read elsewhere stays exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ZERO_DECIMAL_CURRENCIES: frozenset[str] = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
        "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
THREE_DECIMAL_CURRENCIES: frozenset[str] = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

#: What is shown for a missing value (no amount, no date): never "0", which would be a claim.
MISSING = "\u2014"

#: The largest offset any time zone uses (UTC+14) and the smallest (UTC-12), in minutes.
_MAX_OFFSET_MINUTES = 14 * 60
_MIN_OFFSET_MINUTES = -12 * 60


@dataclass(frozen=True, slots=True)
class Amount:
    """Integer minor units of one currency (what ``billing.common.v1.Money`` carries)."""

    amount_minor: int
    currency: str


def currency_exponent(currency: str) -> int:
    """Decimals of the currency's minor unit (0, 2 or 3); the code is case-insensitive."""
    code = currency.strip().upper()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def as_amount(value: object) -> Amount | None:
    """Read a money value in any shape the view models hand over.

    Accepted: an :class:`Amount`, a mapping with ``amount_minor`` and ``currency`` (the JSON
    form), or an object with those attributes (a protobuf ``Money`` or a dataclass). ``None``,
    an empty currency (an unset protobuf message) or a non-integer amount give ``None``: the
    page shows a dash instead of a made-up zero.
    """
    if value is None:
        return None
    if isinstance(value, Amount):
        return value
    if isinstance(value, Mapping):
        minor, currency = value.get("amount_minor"), value.get("currency")
    else:
        minor = getattr(value, "amount_minor", None)
        currency = getattr(value, "currency", None)
    if isinstance(minor, str) and minor.lstrip("-").isdigit():
        minor = int(minor)  # protobuf's JSON form writes int64 as a string
    if isinstance(minor, bool) or not isinstance(minor, int):
        return None
    if not isinstance(currency, str) or not currency.strip():
        return None
    return Amount(minor, currency.strip().upper())


def format_minor(amount_minor: int, currency: str) -> str:
    """``123456, "usd" -> "1,234.56 USD"``; ``1235, "JPY" -> "1,235 JPY"``;
    ``1234, "KWD" -> "1.234 KWD"``."""
    code = currency.strip().upper()
    decimals = currency_exponent(code)
    sign = "-" if amount_minor < 0 else ""
    major, minor = divmod(abs(amount_minor), 10**decimals)
    text = f"{major:,}"
    if decimals:
        text += f".{minor:0{decimals}d}"
    return f"{sign}{text} {code}"


def format_money(value: object) -> str:
    """Any money shape (see :func:`as_amount`) as text, or a dash when absent."""
    amount = as_amount(value)
    if amount is None:
        return MISSING
    return format_minor(amount.amount_minor, amount.currency)


def format_money_with_platform(native: object, platform: object) -> str:
    """The native amount with the platform-currency total beside it when they differ.

    ``platform`` is the ledger's conversion (absent when no FX rate is configured, in which
    case only the native amount is shown: a total is never guessed).
    """
    first = as_amount(native)
    text = format_money(native)
    second = as_amount(platform)
    if first is None or second is None or second.currency == first.currency:
        return text
    return f"{text} ({format_minor(second.amount_minor, second.currency)})"


def format_delta(value: object) -> str:
    """A change with an explicit sign (``+12.00 USD``, ``-3 JPY``, ``0.00 USD``)."""
    amount = as_amount(value)
    if amount is None:
        return MISSING
    text = format_minor(amount.amount_minor, amount.currency)
    return f"+{text}" if amount.amount_minor > 0 else text


def format_count_delta(delta: int) -> str:
    """``+3`` / ``-2`` / ``0``: a count's change against the prior period."""
    return f"+{delta:,}" if delta > 0 else f"{delta:,}"


def percent_change(current: int, prior: int) -> str:
    """The relative change as ``+12.5%``; a dash when there was nothing before (no base)."""
    if prior == 0:
        return MISSING
    change = (current - prior) * 100 / abs(prior)
    return f"{change:+.1f}%"


def parse_offset(raw: str | None) -> int | None:
    """The operator's offset from UTC in minutes (east positive), from the ``tzoffset`` cookie.

    The browser's ``Date.getTimezoneOffset()`` is *west* positive (UTC+1 reports -60); the
    script stores it negated. Anything that is not a whole number inside the range real time
    zones use is ignored (``None``): a forged cookie cannot break a page.
    """
    if raw is None:
        return None
    text = raw.strip()
    body = text[1:] if text[:1] in "+-" else text
    if not body.isdigit() or len(body) > 4:
        return None
    minutes = int(text)
    return minutes if valid_offset(minutes) else None


def valid_offset(minutes: int) -> bool:
    """Inside the range real time zones use (UTC-12:00 to UTC+14:00)."""
    return _MIN_OFFSET_MINUTES <= minutes <= _MAX_OFFSET_MINUTES


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:  # the view models use aware datetimes; naive means UTC
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _parse_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return _as_utc(value)
    if isinstance(value, str) and value:
        try:
            return _as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def offset_label(minutes: int) -> str:
    """``60 -> "UTC+01:00"``, ``-330 -> "UTC-05:30"``."""
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"


def format_datetime(value: object, offset_minutes: int | None = None) -> str:
    """``2026-12-05 22:54 UTC``, plus ``(23:54 UTC+01:00)`` when the operator's offset is
    known and not zero. Accepts aware datetimes and ISO-8601 strings (the JSON form)."""
    moment = _parse_time(value)
    if moment is None:
        return MISSING
    text = moment.strftime("%Y-%m-%d %H:%M UTC")
    if offset_minutes:
        local = moment + timedelta(minutes=offset_minutes)
        day = "" if local.date() == moment.date() else local.strftime("%Y-%m-%d ")
        text += f" ({day}{local.strftime('%H:%M')} {offset_label(offset_minutes)})"
    return text


def format_date(value: object) -> str:
    """The UTC calendar day (``2026-12-05``) of a datetime or ISO string; a dash if absent."""
    moment = _parse_time(value)
    return MISSING if moment is None else moment.strftime("%Y-%m-%d")


def iso_utc(value: object) -> str:
    """Machine-readable form for ``<time datetime=...>`` (empty when absent)."""
    moment = _parse_time(value)
    return "" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")
