from __future__ import annotations

import pytest

from services.ledger.domain.money import (
    CurrencyMismatch,
    Money,
    currency_decimals,
    format_minor,
    normalise_currency,
    parse_currency,
)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (1234, "USD", "12.34 USD"),
        (1234, "usd", "12.34 USD"),
        (5, "eur", "0.05 EUR"),
        (-5, "EUR", "-0.05 EUR"),
        (0, "GBP", "0.00 GBP"),
        (1234, "JPY", "1234 JPY"),
        (-1500, "krw", "-1500 KRW"),
        (12345, "KWD", "12.345 KWD"),
    ],
)
def test_format_minor(amount: int, currency: str, expected: str) -> None:
    assert format_minor(amount, currency) == expected


def test_zero_decimal_and_three_decimal() -> None:
    assert currency_decimals("jpy") == 0
    assert currency_decimals("VND") == 0
    assert currency_decimals("USD") == 2
    assert currency_decimals("BHD") == 3


@pytest.mark.parametrize("bad", ["us", "USDX", "12A", "", "currency"])
def test_bad_currency_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_currency(bad)
    assert parse_currency(bad) is None


def test_money_never_mixes_currencies() -> None:
    assert Money(100, "usd") + Money(50, "USD") == Money(150, "USD")
    with pytest.raises(CurrencyMismatch):
        _ = Money(100, "USD") + Money(100, "EUR")
    with pytest.raises(TypeError):
        Money(1.5, "USD")  # type: ignore[arg-type]
    assert str(Money(-250, "jpy")) == "-250 JPY"
