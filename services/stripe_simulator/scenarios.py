"""Headline scenarios: which life each customer lives.

Customer ``i`` gets ``SCENARIOS[i % len(SCENARIOS)]`` (and API version family
``i // len(SCENARIOS)`` round-robin), so any world with at least ``2 * len(SCENARIOS)`` tenants
covers every scenario in both families. Parameters (dates, cards, amounts) come from the
customer's seeded RNG.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .clock import DAY

if TYPE_CHECKING:
    from .customer_sim import CustomerSim, SignupPlan

SCENARIOS: tuple[str, ...] = (
    "plain",
    "trial",
    "upgrade",
    "downgrade_scheduled",
    "downgrade_cancelled",
    "cancel_at_period_end",
    "reactivate",
    "cancel_now",
    "pause",
    "trial_paused",
    "payment_recovered",
    "payment_unrecovered",
    "refunds",
    "credit_note",
    "billing_info",
    "payment_method_change",
    "quantity",
    "discount_percent",
    "discount_amount",
    "yearly",
    "quarterly",
)


def signup_plan(sim: CustomerSim) -> SignupPlan:
    """How the customer signs up (plan tier, interval, trial, card, coupon)."""
    from .customer_sim import SignupPlan

    sc = sim.scenario
    plan = SignupPlan(tier=sim.rng.randint(0, 2))
    if sc == "upgrade":
        plan.tier = sim.rng.randint(0, 1)
    elif sc in ("downgrade_scheduled", "downgrade_cancelled"):
        plan.tier = sim.rng.randint(1, 2)
    elif sc == "trial":
        plan.trial_days = 14
    elif sc == "trial_paused":
        plan.trial_days = 7
        plan.with_payment_method = False
    elif sc == "quantity":
        plan.quantity = sim.rng.randint(1, 3)
    elif sc == "discount_percent":
        plan.coupon = sim.catalog.percent_coupon
    elif sc == "yearly":
        plan.interval = "year"
    elif sc == "quarterly":
        plan.interval_count = 3
    return plan


def schedule_followups(sim: CustomerSim) -> None:
    """Put the scenario's actions on the customer's agenda (relative to the first period)."""
    s = sim.sub
    assert s is not None
    sc = sim.scenario
    p1 = s.period_end
    jitter = sim.rng.randint(0, 20 * 3600)

    def at(days: float, action: Callable[[int], object]) -> None:
        sim.at(p1 + int(days * DAY) + jitter, action)

    if sc == "upgrade":

        def upgrade(t: int) -> None:
            sub = sim.sub
            if sub is None or sub.status == "canceled":
                return
            price = sim.catalog.price(
                sub.price.currency, sub.price.tier + 1, sub.price.interval, sub.price.interval_count
            )
            sim.change_price(t, price, sub.quantity, invoice_now=True)

        at(9, upgrade)
    elif sc == "downgrade_scheduled":
        at(5, sim.schedule_downgrade)
    elif sc == "downgrade_cancelled":
        at(5, sim.schedule_downgrade)
        at(12, sim.cancel_downgrade)
    elif sc == "cancel_at_period_end":
        at(8, lambda t: sim.set_cancel_at_period_end(t, True))
    elif sc == "reactivate":
        at(8, lambda t: sim.set_cancel_at_period_end(t, True))
        at(15, lambda t: sim.set_cancel_at_period_end(t, False))
    elif sc == "cancel_now":

        def cancel_now(t: int) -> None:
            if sim.sub is not None and sim.sub.status != "canceled":
                sim.end_subscription(t, "cancellation_requested", "too_expensive", api=True)

        at(12, cancel_now)
    elif sc == "pause":
        at(3, lambda t: sim.pause(t, "void"))
        at(3 + 65, lambda t: sim.pause(t, None))
    elif sc == "trial_paused":
        at(10, sim.resume_paused)
    elif sc in ("payment_recovered", "payment_unrecovered"):
        sim.fail_cycles.add(2)
    elif sc == "refunds":

        def refund_twice(t: int) -> None:
            if sim.charges:
                ch = sim.charges[-1]
                sim.refund(t, ch, ch.amount * 3 // 10, "requested_by_customer")
                sim.at(t + 2 * DAY, lambda tt: sim.refund(tt, ch, ch.amount // 5, None))

        def refund_full(t: int) -> None:
            if sim.charges:
                ch = sim.charges[-1]
                sim.refund(t, ch, ch.amount, "duplicate")

        at(2, refund_twice)
        sim.at(s.period_end + 40 * DAY + jitter, refund_full)
    elif sc == "credit_note":
        at(6, sim.credit_note)
    elif sc == "billing_info":
        sim.at(sim.signup_t + 2 * DAY + jitter, sim.set_billing_info)
    elif sc == "payment_method_change":
        at(4, sim.change_payment_method)
    elif sc == "quantity":

        def more(t: int) -> None:
            sub = sim.sub
            if sub is not None and sub.status != "canceled":
                sim.change_price(t, sub.price, sub.quantity + 2, invoice_now=True)

        def fewer(t: int) -> None:
            sub = sim.sub
            if sub is not None and sub.status != "canceled":
                sim.change_price(t, sub.price, max(1, sub.quantity - 1), invoice_now=False)

        at(7, more)
        at(38, fewer)
    elif sc == "discount_amount":
        at(1, lambda t: sim.apply_coupon(t, sim.catalog.amount_coupons[s.price.currency]))


def maybe_extra_activity(sim: CustomerSim, t: int) -> None:
    """Incidental activity after a renewal (probability ``extra_activity`` per cycle)."""
    rng = sim.rng
    if rng.random() >= sim.ctx.config.extra_activity:
        return
    kind = rng.randrange(3)
    when = t + rng.randint(1, 9) * DAY + rng.randint(0, 86_399)
    if kind == 0 and sim.charges:
        ch = sim.charges[-1]
        sim.at(when, lambda tt: sim.refund(tt, ch, max(1, ch.amount // 10), None))
    elif kind == 1:
        sim.at(when, sim.change_payment_method)
    else:

        def bump(tt: int) -> None:
            sub = sim.sub
            if sub is not None and sub.status in ("active", "trialing"):
                sim.change_price(tt, sub.price, sub.quantity + 1, invoice_now=True)

        sim.at(when, bump)
