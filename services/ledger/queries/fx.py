"""Blended totals in the platform currency: exact Decimal conversion of minor units.

Configuration (environment, read once per servicer):

* ``PLATFORM_CURRENCY`` (default ``USD``): the currency of every blended total.
* ``FX_RATES`` (default empty): ``"EUR=1.08,JPY=0.0067"``, meaning one unit (major unit) of
  ``EUR`` is worth ``1.08`` units of the platform currency. The platform currency itself is
  always 1.

Rules
-----
* Conversion goes through **major units**, so zero- and three-decimal currencies are right:
  ``10000`` JPY minor units = 10000 yen; x 0.0067 = 67 USD = ``6700`` USD minor units.
  ``minor_out = minor_in / 10**dec(in) x rate x 10**dec(platform)``, in ``Decimal`` with a
  28+ digit context (no float anywhere), rounded **half to even** once, to an integer number of
  platform minor units.
* A blended sum first adds each currency's native minor units exactly, then converts each
  currency's subtotal once (so rounding happens once per currency, not once per row).
* A currency without a rate is never guessed: it is left out of the blended total and named in
  ``unconverted`` (reported as ``unconverted_currencies`` by every RPC).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal, InvalidOperation

from services.ledger.domain.money import currency_decimals, normalise_currency, round_half_even

_CONTEXT = Context(prec=40)


@functools.lru_cache(maxsize=1024)
def _factor(platform: str, currency: str, rate: Decimal) -> Decimal:
    """Memoised: a 90-day dashboard converts about 1,500 subtotals, and computing the factor
    (decimals of both currencies, a power of ten) was two thirds of each conversion."""
    shift = currency_decimals(platform) - currency_decimals(currency)
    return _CONTEXT.multiply(rate, Decimal(10) ** shift)


class FxConfigError(ValueError):
    """``FX_RATES`` or ``PLATFORM_CURRENCY`` cannot be parsed."""


def parse_rates(text: str) -> dict[str, Decimal]:
    """``"EUR=1.08, jpy=0.0067"`` -> ``{"EUR": Decimal("1.08"), "JPY": Decimal("0.0067")}``."""
    rates: dict[str, Decimal] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        code, sep, value = part.partition("=")
        if not sep:
            raise FxConfigError(f"FX_RATES entry {part!r} is not CODE=RATE")
        try:
            currency = normalise_currency(code)
            rate = Decimal(value.strip())
        except (ValueError, InvalidOperation) as exc:
            raise FxConfigError(f"FX_RATES entry {part!r}: {exc}") from exc
        if not rate.is_finite() or rate <= 0:
            raise FxConfigError(f"FX_RATES entry {part!r}: the rate must be positive")
        rates[currency] = rate
    return rates


@dataclass(frozen=True, slots=True)
class Fx:
    """The platform currency and the rates into it."""

    platform: str = "USD"
    rates: Mapping[str, Decimal] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Fx:
        env = os.environ if environ is None else environ
        try:
            platform = normalise_currency(env.get("PLATFORM_CURRENCY", "USD") or "USD")
        except ValueError as exc:
            raise FxConfigError(f"PLATFORM_CURRENCY: {exc}") from exc
        return cls(platform, parse_rates(env.get("FX_RATES", "")))

    def rate(self, currency: str) -> Decimal | None:
        if currency == self.platform:
            return Decimal(1)
        return self.rates.get(currency)

    def factor(self, currency: str) -> Decimal | None:
        """Platform minor units per minor unit of ``currency`` (``None`` without a rate)."""
        rate = self.rate(currency)
        if rate is None:
            return None
        return _factor(self.platform, currency, rate)

    def convert(self, amount_minor: int, currency: str) -> int | None:
        """``amount_minor`` of ``currency`` in platform minor units, or ``None`` without a rate."""
        factor = self.factor(currency)
        if factor is None:
            return None
        exact = _CONTEXT.multiply(Decimal(amount_minor), factor)
        return round_half_even(exact)


@dataclass(slots=True)
class Blend:
    """Accumulates native per-currency sums, then converts each once."""

    fx: Fx
    native: dict[str, int] = field(default_factory=dict)

    def add(self, amount_minor: int, currency: str | None) -> None:
        if currency is None:
            return
        self.native[currency] = self.native.get(currency, 0) + amount_minor

    def extend(self, items: Iterable[tuple[str | None, int]]) -> Blend:
        for currency, amount in items:
            self.add(int(amount), currency)
        return self

    @property
    def total(self) -> int:
        total = 0
        for currency, amount in self.native.items():
            converted = self.fx.convert(amount, currency)
            if converted is not None:
                total += converted
        return total

    @property
    def unconverted(self) -> set[str]:
        return {c for c in self.native if self.fx.rate(c) is None}


__all__ = ["Blend", "Fx", "FxConfigError", "parse_rates"]
