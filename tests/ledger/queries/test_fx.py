"""Currency conversion rules (unit tests, no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.ledger.queries.fx import Blend, Fx, FxConfigError, parse_rates


def test_parse_rates() -> None:
    assert parse_rates(" eur=1.08, JPY=0.0067 ,") == {
        "EUR": Decimal("1.08"),
        "JPY": Decimal("0.0067"),
    }
    for bad in ("EUR", "EUR=abc", "EURO=1", "EUR=0", "EUR=-1", "EUR=nan"):
        with pytest.raises(FxConfigError):
            parse_rates(bad)


def test_from_env() -> None:
    fx = Fx.from_env({"PLATFORM_CURRENCY": "eur", "FX_RATES": "USD=0.92"})
    assert fx.platform == "EUR" and fx.convert(100, "USD") == 92
    assert Fx.from_env({}).platform == "USD"
    with pytest.raises(FxConfigError):
        Fx.from_env({"PLATFORM_CURRENCY": "dollars"})


def test_zero_decimal_and_three_decimal_currencies() -> None:
    fx = Fx("USD", {"JPY": Decimal("0.0067"), "KWD": Decimal("3.25")})
    assert fx.convert(10000, "JPY") == 6700  # 10000 yen = 67.00 USD
    assert fx.convert(1, "KWD") == 0  # 0.001 KWD = 0.00325 USD -> 0 cents
    assert fx.convert(1000, "KWD") == 325  # 1 KWD = 3.25 USD
    jpy_platform = Fx("JPY", {"USD": Decimal("150")})
    assert jpy_platform.convert(1234, "USD") == 1851  # 12.34 USD = 1851 yen
    assert fx.convert(5, "USD") == 5


def test_half_even_rounding_and_missing_rates() -> None:
    fx = Fx("USD", {"EUR": Decimal("1.5")})
    assert fx.convert(1, "EUR") == 2  # 1.5 -> 2
    assert fx.convert(3, "EUR") == 4  # 4.5 -> 4
    assert fx.convert(-3, "EUR") == -4
    assert fx.convert(100, "GBP") is None
    blend = Blend(fx).extend([("EUR", 1), ("EUR", 2), ("GBP", 500), ("USD", 10)])
    assert blend.total == 14  # EUR summed first (3 -> 4.5 -> 4), GBP left out
    assert blend.unconverted == {"GBP"}
