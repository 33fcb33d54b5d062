"""The fixed product catalog and coupons of a world (same for every seed, ids aside)."""

from __future__ import annotations

from dataclasses import dataclass

from .ids import object_id
from .model import Coupon, Price, Product

#: (name, monthly amount in minor units for usd/eur, monthly amount in yen)
TIERS: tuple[tuple[str, int, int], ...] = (
    ("Starter", 1500, 1500),
    ("Pro", 4900, 4900),
    ("Business", 9900, 9900),
)
#: (interval, interval_count, multiplier of the monthly amount): quarterly and yearly discounts.
INTERVALS: tuple[tuple[str, int, float], ...] = (
    ("month", 1, 1.0),
    ("month", 3, 2.8),
    ("year", 1, 10.0),
)
#: Owner index used for catalog ids (customers use 0..N-1; this never collides).
CATALOG_OWNER = 62**4 - 1


@dataclass(slots=True)
class Catalog:
    """Products, prices indexed by (currency, tier, interval, count), and coupons."""

    products: list[Product]
    prices: dict[tuple[str, int, str, int], Price]
    percent_coupon: Coupon
    amount_coupons: dict[str, Coupon]

    def price(self, currency: str, tier: int, interval: str = "month", count: int = 1) -> Price:
        """Look up a price; tiers outside the catalog are clamped."""
        tier = max(0, min(len(self.products) - 1, tier))
        return self.prices[(currency, tier, interval, count)]

    def all_prices(self) -> list[Price]:
        """Prices in a stable order."""
        return [self.prices[k] for k in sorted(self.prices)]


def build_catalog(tag: str, currencies: tuple[str, ...], created: int) -> Catalog:
    """Create the catalog for a world whose ids carry ``tag``."""
    counter = 0

    def next_id(prefix: str) -> str:
        nonlocal counter
        counter += 1
        return object_id(prefix, tag, CATALOG_OWNER, counter)

    products = [Product(next_id("prod"), name, created) for name, _, _ in TIERS]
    prices: dict[tuple[str, int, str, int], Price] = {}
    for currency in currencies:
        for tier, (name, minor, yen) in enumerate(TIERS):
            monthly = yen if currency == "jpy" else minor
            for interval, count, mult in INTERVALS:
                unit = round(monthly * mult)
                label = (
                    "yearly"
                    if interval == "year"
                    else ("monthly" if count == 1 else f"every {count} months")
                )
                prices[(currency, tier, interval, count)] = Price(
                    id=next_id("price"),
                    product=products[tier],
                    tier=tier,
                    currency=currency,
                    unit_amount=unit,
                    interval=interval,
                    interval_count=count,
                    created=created + 1,
                    nickname=f"{name} {label} ({currency})",
                )
    percent = Coupon(
        id=f"PCT20{tag}",
        name="20% off for 3 months",
        created=created + 2,
        duration="repeating",
        duration_in_months=3,
        percent_off=20.0,
    )
    amount_off = {
        cur: Coupon(
            id=f"OFF{cur.upper()}{tag}",
            name=f"500 {cur} off",
            created=created + 2,
            duration="forever",
            amount_off=500,
            currency=cur,
        )
        for cur in currencies
    }
    return Catalog(products, prices, percent, amount_off)
