"""Calendar arithmetic for billing periods (Stripe bills by calendar month, clamping the day)."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

DAY = 86_400


def add_months(ts: int, months: int) -> int:
    """Return ``ts`` moved by ``months`` calendar months, clamping to the month's last day.

    Stripe anchors monthly periods on the billing-cycle anchor day and clamps (Jan 31 -> Feb 29),
    which is why periods are not a fixed number of seconds.
    """
    dt = datetime.fromtimestamp(ts, tz=UTC)
    total = dt.month - 1 + months
    year, month = dt.year + total // 12, total % 12 + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return int(dt.replace(year=year, month=month, day=day).timestamp())


def add_interval(ts: int, interval: str, count: int) -> int:
    """Advance ``ts`` by one billing interval (``month``/``year`` times ``count``)."""
    if interval == "year":
        return add_months(ts, 12 * count)
    if interval == "month":
        return add_months(ts, count)
    if interval == "week":
        return ts + 7 * DAY * count
    return ts + DAY * count
