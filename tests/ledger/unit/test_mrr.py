"""One test per MRR rule (services/ledger/domain/mrr.py docstring) plus properties."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.ledger.domain.mrr import compute_mrr, monthly_factor
from services.ledger.domain.normalised import (
    DiscountSnapshot,
    NormalisedEvent,
    SubscriptionItem,
    SubscriptionSnapshot,
)
from services.ledger.domain.resolvers import resolve
from tests.ledger.unit import builders as b


def snap(obj: dict[str, Any], *, api_version: str = b.BASIL) -> SubscriptionSnapshot:
    ev = resolve(b.event("customer.subscription.updated", obj, api_version=api_version))
    assert isinstance(ev, NormalisedEvent) and ev.subscription is not None
    return ev.subscription


def sub_with(*items: dict[str, Any], **overrides: Any) -> SubscriptionSnapshot:
    return snap(b.subscription(list(items), **overrides))


def test_monthly_price_times_quantity() -> None:
    s = sub_with(b.item(b.price(2000), quantity=3))
    r = compute_mrr(s)
    assert (r.committed, r.forward, r.currency) == (6000, 6000, "USD")


def test_yearly_is_divided_by_12() -> None:
    assert compute_mrr(sub_with(b.item(b.price(120_000, interval="year")))).committed == 10_000
    # 1000/12 = 83.33 -> 83
    assert compute_mrr(sub_with(b.item(b.price(1000, interval="year")))).committed == 83


def test_weekly_is_times_52_over_12() -> None:
    # 1200 * 52 / 12 = 5200
    assert compute_mrr(sub_with(b.item(b.price(1200, interval="week")))).committed == 5200


def test_daily_is_times_365_over_12() -> None:
    # 120 * 365 / 12 = 3650
    assert compute_mrr(sub_with(b.item(b.price(120, interval="day")))).committed == 3650


def test_interval_count_divides() -> None:
    quarterly = sub_with(b.item(b.price(3000, interval="month", interval_count=3)))
    assert compute_mrr(quarterly).committed == 1000
    biennial = sub_with(b.item(b.price(48_000, interval="year", interval_count=2)))
    assert compute_mrr(biennial).committed == 2000


def test_several_items_are_summed_and_metered_ignored() -> None:
    s = sub_with(
        b.item(b.price(1000, price_id="price_a"), quantity=2),
        b.item(b.price(500, price_id="price_b"), quantity=1),
        b.item(b.price(999, price_id="price_m", usage_type="metered"), quantity=1),
    )
    assert compute_mrr(s).committed == 2500


def test_percent_off_discount() -> None:
    d = b.coupon_discount(percent_off=25.5)
    s = sub_with(b.item(b.price(2000)), discounts=[d])
    assert compute_mrr(s).committed == 1490  # 2000 * 0.745


def test_amount_off_discount_same_currency() -> None:
    d = b.coupon_discount(amount_off=500, currency="usd")
    assert compute_mrr(sub_with(b.item(b.price(2000)), discounts=[d])).committed == 1500


def test_amount_off_on_yearly_plan_is_normalised_per_month() -> None:
    # 1200 off each (yearly) invoice = 100 off per month
    d = b.coupon_discount(amount_off=1200, currency="usd")
    s = sub_with(b.item(b.price(120_000, interval="year")), discounts=[d])
    assert compute_mrr(s).committed == 10_000 - 100


def test_amount_off_in_other_currency_is_ignored() -> None:
    d = b.coupon_discount(amount_off=500, currency="eur")
    r = compute_mrr(sub_with(b.item(b.price(2000)), discounts=[d]))
    assert r.committed == 2000 and "discount_currency_mismatch" in r.flags


def test_discount_never_goes_negative_and_once_is_ignored() -> None:
    big = b.coupon_discount(amount_off=10_000, currency="usd")
    assert compute_mrr(sub_with(b.item(b.price(2000)), discounts=[big])).committed == 0
    once = b.coupon_discount(percent_off=50, duration="once")
    assert compute_mrr(sub_with(b.item(b.price(2000)), discounts=[once])).committed == 2000


def test_expired_discount_is_ignored_as_of() -> None:
    d = b.coupon_discount(percent_off=50, duration="repeating", end=b.T0)
    s = sub_with(b.item(b.price(2000)), discounts=[d])
    assert compute_mrr(s, as_of=b.T0 - 1).committed == 1000
    assert compute_mrr(s, as_of=b.T0).committed == 2000


def test_legacy_single_discount_object() -> None:
    d = b.coupon_discount(percent_off=10, basil=False)
    obj = b.subscription([b.item(b.price(2000), basil=False)], basil=False, discount=d)
    assert compute_mrr(snap(obj, api_version=b.LEGACY)).committed == 1800


def test_trialing_is_zero_now_but_forward_is_post_trial_price() -> None:
    s = sub_with(b.item(b.price(2000)), status="trialing", trial_end=b.T0 + 100)
    r = compute_mrr(s)
    assert r.committed == 0 and r.forward == 2000


def test_cancel_at_period_end_gives_forward_zero() -> None:
    r = compute_mrr(sub_with(b.item(b.price(2000)), cancel_at_period_end=True))
    assert (r.committed, r.forward) == (2000, 0)
    r2 = compute_mrr(sub_with(b.item(b.price(2000)), cancel_at=b.T0 + 10))
    assert (r2.committed, r2.forward) == (2000, 0)
    far = compute_mrr(sub_with(b.item(b.price(2000)), cancel_at=b.T0 + 10 * b.MONTH))
    assert far.forward == 2000  # cancels after the next period: not this period's concern


def test_scheduled_downgrade_pending_update_sets_forward() -> None:
    cheaper = b.item(b.price(800, price_id="price_small"))
    pending = {"subscription_items": [cheaper], "expires_at": b.T0 + 100, "trial_end": None}
    r = compute_mrr(sub_with(b.item(b.price(2000)), pending_update=pending))
    assert (r.committed, r.forward) == (2000, 800)


def test_scheduled_downgrade_expanded_schedule_next_phase_sets_forward() -> None:
    sched = b.schedule(
        [
            (b.T0 - 100, b.T0 + 100, [(b.price(2000), 1)]),
            (b.T0 + 100, b.T0 + 1000, [(b.price(500, price_id="price_small"), 2)]),
        ]
    )
    r = compute_mrr(sub_with(b.item(b.price(2000)), schedule=sched), as_of=b.T0)
    assert (r.committed, r.forward) == (2000, 1000)


def test_ended_is_zero() -> None:
    for overrides in (
        {"status": "canceled"},
        {"status": "incomplete_expired"},
        {"ended_at": b.T0 - 5},
    ):
        r = compute_mrr(sub_with(b.item(b.price(2000)), **overrides))
        assert (r.committed, r.forward) == (0, 0), overrides


def test_paused_and_incomplete_commit_nothing_past_due_still_counts() -> None:
    paused = sub_with(b.item(b.price(2000)), pause_collection={"behavior": "void"})
    assert compute_mrr(paused).committed == 0
    assert compute_mrr(sub_with(b.item(b.price(2000)), status="incomplete")).committed == 0
    assert compute_mrr(sub_with(b.item(b.price(2000)), status="past_due")).committed == 2000


def test_zero_decimal_currency_unchanged() -> None:
    yen = sub_with(b.item(b.price(1200, currency="jpy"), quantity=2), currency="jpy")
    r = compute_mrr(yen)
    assert (r.committed, r.currency) == (2400, "JPY")
    yearly_yen = sub_with(b.item(b.price(10_000, interval="year", currency="jpy")), currency="jpy")
    assert compute_mrr(yearly_yen).committed == 833  # 10000/12 = 833.33 yen


def test_rounding_once_half_to_even() -> None:
    # two items of 6/12 = 0.5 each: summed exactly (1.0) then rounded -> 1, not 0 + 0 or 1 + 1
    s = sub_with(
        b.item(b.price(6, interval="year", price_id="price_a")),
        b.item(b.price(6, interval="year", price_id="price_b")),
    )
    assert compute_mrr(s).committed == 1
    # 18/12 = 1.5 -> 2 (even); 30/12 = 2.5 -> 2 (even)
    assert compute_mrr(sub_with(b.item(b.price(18, interval="year")))).committed == 2
    assert compute_mrr(sub_with(b.item(b.price(30, interval="year")))).committed == 2


def test_never_mixes_currencies() -> None:
    s = sub_with(
        b.item(b.price(1000, price_id="price_usd")),
        b.item(b.price(1000, price_id="price_eur", currency="eur")),
    )
    r = compute_mrr(s)
    assert r.committed == 1000 and r.currency == "USD" and "mixed_currency" in r.flags


def test_monthly_factor_unknown_interval() -> None:
    assert monthly_factor(None) is None
    assert monthly_factor("fortnight") is None


# --------------------------------------------------------------------------- properties
_intervals = st.sampled_from(["day", "week", "month", "year"])


def _snapshot(
    amounts: list[tuple[int, int, str, int]], discount: DiscountSnapshot | None, status: str
) -> SubscriptionSnapshot:
    items = tuple(
        SubscriptionItem(
            id=f"si_{n}",
            price_id=f"price_{n}",
            product_id=None,
            plan=None,
            nickname=None,
            lookup_key=None,
            unit_amount=amount,
            unit_amount_decimal=None,
            currency="USD",
            interval=interval,
            interval_count=count,
            quantity=quantity,
        )
        for n, (amount, quantity, interval, count) in enumerate(amounts)
    )
    return SubscriptionSnapshot(
        id="sub",
        customer_id="cus",
        status=status,
        currency="USD",
        items=items,
        discounts=(discount,) if discount else (),
    )


_discounts = st.one_of(
    st.none(),
    st.builds(
        lambda p: DiscountSnapshot(id="d", coupon_id="c", percent_off=Decimal(p)),
        st.integers(0, 100),
    ),
    st.builds(
        lambda a: DiscountSnapshot(id="d", coupon_id="c", amount_off=a, currency="USD"),
        st.integers(0, 1_000_000),
    ),
)
_items = st.lists(
    st.tuples(st.integers(0, 10**7), st.integers(0, 1000), _intervals, st.integers(1, 12)),
    max_size=5,
)
_status = st.sampled_from(["active", "trialing", "past_due", "canceled", "paused", "unpaid"])


@given(_items, _discounts, _status)
def test_mrr_is_never_negative(items: Any, discount: Any, status: str) -> None:
    r = compute_mrr(_snapshot(items, discount, status))
    assert r.committed >= 0 and r.forward >= 0


@given(_items, st.integers(1, 50))
def test_scaling_quantity_scales_mrr(items: Any, k: int) -> None:
    base = _snapshot(items, None, "active")
    scaled = base._replace(
        items=tuple(i._replace(quantity=(i.quantity or 0) * k) for i in base.items),
    )
    # exact before rounding; rounding once per subscription bounds the error by k/2 + 1/2
    assert abs(compute_mrr(scaled).committed - k * compute_mrr(base).committed) <= (k + 1) / 2


@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 100)), max_size=5),
    st.integers(1, 50),
)
def test_scaling_quantity_scales_monthly_mrr_exactly(items: Any, k: int) -> None:
    base = _snapshot([(a, q, "month", 1) for a, q in items], None, "active")
    scaled = _snapshot([(a, q * k, "month", 1) for a, q in items], None, "active")
    assert compute_mrr(scaled).committed == k * compute_mrr(base).committed


@given(_items, _discounts, _status)
def test_mrr_is_deterministic(items: Any, discount: Any, status: str) -> None:
    s = _snapshot(items, discount, status)
    assert compute_mrr(s, as_of=5) == compute_mrr(s, as_of=5)
