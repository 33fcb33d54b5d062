"""Exact money: integer minor units plus an upper-case ISO-4217 currency code.

Rules
-----
* Amounts are ``int`` minor units (cents for USD, yen for JPY, fils/1000 for KWD). Never floats.
* Currency codes are normalised to upper case and must match ``^[A-Z]{3}$``.
* Zero-decimal currencies follow Stripe's list
  (https://docs.stripe.com/currencies#zero-decimal): the minor unit *is* the major unit,
  so ``format_minor(1234, "JPY") == "1234 JPY"``.
* Three-decimal currencies (BHD, JOD, KWD, OMR, TND) are formatted with three decimals.
* Formatting is ``"<sign><major>.<minor> <CODE>"`` with no thousands separator and no
  symbol, e.g. ``format_minor(1234, "USD") == "12.34 USD"`` and
  ``format_minor(-5, "EUR") == "-0.05 EUR"``. It is unambiguous in every currency and
  locale-independent; presentation layers may prettify it.
* Amounts in different currencies are never added together (``CurrencyMismatch``).
* **One rounding rule**: an exact amount (``Fraction`` / ``Decimal``) becomes minor units by
  rounding **half to even** (banker's rounding: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2), once, at the
  end of a computation. It is Python's own ``round`` and has no bias over many amounts. SQL
  uses ``ledger.round_half_even(numeric)`` (PostgreSQL's ``round()`` rounds half away from
  zero, so it is never used for money); a test checks both give the same answers.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

__all__ = [
    "THREE_DECIMAL_CURRENCIES",
    "ZERO_DECIMAL_CURRENCIES",
    "CurrencyMismatch",
    "Money",
    "currency_decimals",
    "format_minor",
    "normalise_currency",
    "parse_currency",
    "round_half_even",
]

ZERO_DECIMAL_CURRENCIES: frozenset[str] = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)
THREE_DECIMAL_CURRENCIES: frozenset[str] = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


class CurrencyMismatch(ValueError):
    """Raised when two amounts in different currencies would be combined."""


def normalise_currency(code: str) -> str:
    """Return ``code`` upper-cased; raise ``ValueError`` unless it is three ASCII letters."""
    if not isinstance(code, str):
        raise ValueError(f"currency must be a string, got {type(code).__name__}")
    upper = code.strip().upper()
    if not _CURRENCY_RE.match(upper):
        raise ValueError(f"not an ISO-4217 currency code: {code!r}")
    return upper


def parse_currency(value: object) -> str | None:
    """Tolerant variant for payload parsing: the upper-case code, or ``None`` if invalid."""
    if not isinstance(value, str):
        return None
    return _parse_currency_text(value)


@functools.lru_cache(maxsize=1024)
def _parse_currency_text(value: str) -> str | None:
    # Payloads name a handful of currencies ~10 times per event: remembered, not re-matched.
    try:
        return normalise_currency(value)
    except ValueError:
        return None


def currency_decimals(currency: str) -> int:
    """Number of decimals of the currency's minor unit as Stripe uses it (0, 2 or 3)."""
    code = normalise_currency(currency)
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def format_minor(amount: int, currency: str) -> str:
    """Format integer minor units, e.g. ``format_minor(1234, "usd") -> "12.34 USD"``."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amount must be an int of minor units")
    code = normalise_currency(currency)
    decimals = currency_decimals(code)
    sign = "-" if amount < 0 else ""
    magnitude = abs(amount)
    if decimals == 0:
        return f"{sign}{magnitude} {code}"
    major, minor = divmod(magnitude, 10**decimals)
    return f"{sign}{major}.{minor:0{decimals}d} {code}"


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: ``amount`` minor units of ``currency`` (upper-case ISO-4217)."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("Money.amount must be an int of minor units")
        object.__setattr__(self, "currency", normalise_currency(self.currency))

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def format(self) -> str:
        return format_minor(self.amount, self.currency)

    def __str__(self) -> str:
        return self.format()


def round_half_even(value: Fraction | Decimal | int) -> int:
    """THE money rounding rule (see the module docstring): half to even, to an integer."""
    if isinstance(value, Decimal):
        return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))
    return round(value)  # int and Fraction.__round__ without ndigits: half to even
