"""Unit tests of services/backoffice_gateway/formatting.py (money by exponent, UTC dates)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.backoffice_gateway import formatting as f


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (123456, "usd", "1,234.56 USD"),
        (5, "EUR", "0.05 EUR"),
        (-5, "EUR", "-0.05 EUR"),
        (1235, "JPY", "1,235 JPY"),
        (-1000000, "jpy", "-1,000,000 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (1, "BHD", "0.001 BHD"),
        (0, "USD", "0.00 USD"),
        (0, "JPY", "0 JPY"),
        (100, "KRW", "100 KRW"),
    ],
)
def test_money_by_exponent(minor: int, currency: str, text: str) -> None:
    assert f.format_minor(minor, currency) == text


def test_exponent_lists() -> None:
    assert f.currency_exponent("JPY") == 0
    assert f.currency_exponent("kwd") == 3
    assert f.currency_exponent("USD") == 2
    assert f.currency_exponent("GBP") == 2
    assert not f.ZERO_DECIMAL_CURRENCIES & f.THREE_DECIMAL_CURRENCIES


@dataclass
class _Money:  # the shape of a protobuf Money / a view-model dataclass
    amount_minor: int
    currency: str


def test_every_money_shape_is_read() -> None:
    assert f.format_money({"amount_minor": 250, "currency": "usd"}) == "2.50 USD"
    assert f.format_money({"amount_minor": "250", "currency": "JPY"}) == "250 JPY"
    assert f.format_money(_Money(250, "EUR")) == "2.50 EUR"
    assert f.format_money(f.Amount(7, "KWD")) == "0.007 KWD"


@pytest.mark.parametrize(
    "value",
    [
        None,
        {},
        {"amount_minor": 1},
        {"amount_minor": 1.5, "currency": "USD"},
        {"amount_minor": True, "currency": "USD"},
        _Money(0, ""),
        "12 USD",
    ],
)
def test_missing_or_bad_money_is_a_dash_not_zero(value: object) -> None:
    assert f.format_money(value) == f.MISSING


def test_platform_total_beside_native_amount() -> None:
    jpy = {"amount_minor": 1000, "currency": "JPY"}
    usd = {"amount_minor": 670, "currency": "USD"}
    assert f.format_money_with_platform(jpy, usd) == "1,000 JPY (6.70 USD)"
    # same currency: once; no conversion (no FX rate): native only, never guessed
    assert f.format_money_with_platform(usd, usd) == "6.70 USD"
    assert f.format_money_with_platform(jpy, None) == "1,000 JPY"
    assert f.format_money_with_platform(None, usd) == f.MISSING


def test_deltas_and_percent() -> None:
    assert f.format_delta({"amount_minor": 1200, "currency": "USD"}) == "+12.00 USD"
    assert f.format_delta({"amount_minor": -3, "currency": "JPY"}) == "-3 JPY"
    assert f.format_delta({"amount_minor": 0, "currency": "USD"}) == "0.00 USD"
    assert f.format_count_delta(3) == "+3"
    assert f.format_count_delta(-1200) == "-1,200"
    assert f.percent_change(110, 100) == "+10.0%"
    assert f.percent_change(50, 100) == "-50.0%"
    assert f.percent_change(5, 0) == f.MISSING


def test_dates_in_utc_with_operator_offset() -> None:
    moment = datetime(2026, 12, 5, 22, 54, 10, tzinfo=UTC)
    assert f.format_datetime(moment) == "2026-12-05 22:54 UTC"
    assert f.format_datetime(moment, 60) == "2026-12-05 22:54 UTC (23:54 UTC+01:00)"
    # crossing midnight names the local day
    assert f.format_datetime(moment, 90) == "2026-12-05 22:54 UTC (2026-12-06 00:24 UTC+01:30)"
    assert f.format_datetime(moment, -330) == "2026-12-05 22:54 UTC (17:24 UTC-05:30)"
    assert f.format_datetime(moment, 0) == "2026-12-05 22:54 UTC"
    # other zones and ISO strings are converted to UTC first
    tokyo = moment.astimezone(timezone(timedelta(hours=9)))
    assert f.format_datetime(tokyo) == "2026-12-05 22:54 UTC"
    assert f.format_datetime("2026-12-05T22:54:10Z") == "2026-12-05 22:54 UTC"
    assert f.format_datetime("2026-12-06T07:54:10+09:00") == "2026-12-05 22:54 UTC"
    assert f.format_datetime(datetime(2026, 12, 5, 22, 54)) == "2026-12-05 22:54 UTC"
    assert f.format_datetime(None) == f.MISSING
    assert f.format_datetime("not a date") == f.MISSING
    assert f.format_date(moment) == "2026-12-05"
    assert f.iso_utc(tokyo) == "2026-12-05T22:54:10Z"
    assert f.iso_utc(None) == ""


@pytest.mark.parametrize(
    ("raw", "minutes"),
    [
        ("60", 60),
        ("-330", -330),
        ("+540", 540),
        ("0", 0),
        ("840", 840),
        ("-720", -720),
        (None, None),
        ("", None),
        ("841", None),
        ("-721", None),
        ("abc", None),
        ("1e3", None),
        ("60.5", None),
        ("--60", None),
        ("99999999999", None),
    ],
)
def test_offset_cookie_is_validated(raw: str | None, minutes: int | None) -> None:
    assert f.parse_offset(raw) == minutes
