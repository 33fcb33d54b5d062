"""The issue 6 MRR rules (mrr.py rules 7-11 and the classification-side rules), as pure unit
tests; tests/ledger/integration/test_money_rules.py runs each through the real webhook path."""

from __future__ import annotations

from typing import Any

from services.ledger.domain.classifier import BillingEventType as T
from services.ledger.domain.classifier import classify
from services.ledger.domain.mrr import compute_mrr
from services.ledger.domain.normalised import NormalisedEvent, SubscriptionSnapshot
from services.ledger.domain.resolvers import resolve
from tests.ledger.unit import builders as b


def snap(obj: dict[str, Any]) -> SubscriptionSnapshot:
    ev = resolve(b.event("customer.subscription.updated", obj))
    assert isinstance(ev, NormalisedEvent) and ev.subscription is not None
    return ev.subscription


def rate(pct: float, inclusive: bool, rate_id: str = "txr") -> dict[str, Any]:
    return {"id": rate_id, "object": "tax_rate", "percentage": pct, "inclusive": inclusive}


def taxed_item(amount: int, rates: list[Any]) -> dict[str, Any]:
    p = b.price(amount)
    p["tax_behavior"] = "inclusive"
    it = b.item(p)
    it["tax_rates"] = rates
    return it


def test_inclusive_rates_are_taken_out_together() -> None:
    it = taxed_item(1250, [rate(20, True, "a"), rate(5, True, "b")])
    assert compute_mrr(snap(b.subscription([it]))).committed == 1000


def test_exclusive_rates_and_default_rates() -> None:
    excl = taxed_item(1000, [rate(20, False)])
    assert compute_mrr(snap(b.subscription([excl]))).committed == 1000
    # the subscription's default rates apply to items without their own
    default = b.subscription([b.item(b.price(1200))], default_tax_rates=[rate(20, True)])
    assert compute_mrr(snap(default)).committed == 1000


def test_unknown_rates_keep_gross_and_say_so() -> None:
    by_id = compute_mrr(snap(b.subscription([taxed_item(1200, ["txr_only_id"])])))
    assert by_id.committed == 1200 and "tax_rate_unknown" in by_id.flags
    auto = b.subscription([taxed_item(1200, [])], automatic_tax={"enabled": True})
    result = compute_mrr(snap(auto))
    assert result.committed == 1200 and "inclusive_tax_unknown" in result.flags


def test_subscription_amount_off_is_shared_before_tax_comes_out() -> None:
    # 1200 gross with 20% inclusive, 200 off the invoice: (1200 - 200) / 1.2
    off = b.coupon_discount(amount_off=200)
    sub = b.subscription([taxed_item(1200, [rate(20, True)])], discounts=[off])
    assert compute_mrr(snap(sub)).committed == 833  # 833.33 rounded half to even


def test_package_pricing_rounds_as_the_price_says() -> None:
    p = b.price(1000)
    p["transform_quantity"] = {"divide_by": 5, "round": "up"}
    assert compute_mrr(snap(b.subscription([b.item(p, 11)]))).committed == 3000
    p["transform_quantity"] = {"divide_by": 5, "round": "down"}
    assert compute_mrr(snap(b.subscription([b.item(p, 11)]))).committed == 2000


def test_currency_options_price_the_subscription_currency() -> None:
    p = b.price(2000)
    p["currency_options"] = {"jpy": {"unit_amount": 300, "unit_amount_decimal": "300"}}
    jpy = compute_mrr(snap(b.subscription([b.item(p)], currency="jpy")))
    assert (jpy.committed, jpy.currency) == (300, "JPY")
    missing = compute_mrr(snap(b.subscription([b.item(b.price(2000))], currency="eur")))
    assert missing.committed == 0 and "currency_option_missing" in missing.flags


def test_item_discount_ids_are_flagged() -> None:
    it = b.item(b.price(2000))
    it["discounts"] = ["di_only_id"]
    result = compute_mrr(snap(b.subscription([it])))
    assert result.committed == 2000 and "discount_terms_unknown" in result.flags


def deleted(sub: dict[str, Any], previous: dict[str, Any] | None = None) -> Any:
    ev = resolve(b.event("customer.subscription.deleted", sub, previous))
    assert isinstance(ev, NormalisedEvent)
    return classify(ev)


def test_deleting_an_uncommitted_subscription_has_delta_zero() -> None:
    ended: dict[str, Any] = {"ended_at": b.T0, "canceled_at": b.T0}
    for sub, previous in (
        (b.subscription(status="incomplete_expired", **ended), None),
        (b.subscription(status="canceled", **ended), {"status": "paused"}),
        (b.subscription(status="canceled", trial_end=b.T0 + 10, **ended), None),
    ):
        row = deleted(sub, previous)
        assert (row.previous_amount, row.amount_delta) == (0, 0)
    row = deleted(b.subscription(status="canceled", **ended))
    assert (row.previous_amount, row.amount_delta) == (2000, -2000)


def test_expired_coupon_is_an_upgrade_step() -> None:
    coupon = b.coupon_discount(percent_off=50.0, duration="repeating", basil=False, end=b.T0 - 1)
    ev = resolve(
        b.event(
            "customer.subscription.updated",
            b.subscription(basil=False, discount=None),
            {"discount": coupon},
            api_version=b.LEGACY,
        )
    )
    assert isinstance(ev, NormalisedEvent)
    row = classify(ev)
    assert row is not None and row.event_type is T.SubscriptionUpgraded
    assert (row.previous_amount, row.new_amount, row.amount_delta) == (1000, 2000, 1000)
