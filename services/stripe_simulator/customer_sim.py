"""One customer's billing life, stepped in time by the world's merger.

A :class:`CustomerSim` owns a small agenda (heap of timed actions). ``run()`` is a generator
that yields the time of its next action and performs it when resumed; every event an action
emits carries exactly that time. The world merges all customers' generators by time, so the
global stream is chronological without ever materialising it (this is what makes 50,000
customers and millions of events streamable).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .catalog import Catalog
from .clock import DAY, add_interval, add_months
from .config import WorldConfig
from .diff import previous_attributes
from .ids import mix64, object_id
from .model import (
    Charge,
    Coupon,
    CreditNote,
    Customer,
    Discount,
    Invoice,
    Line,
    PaymentIntent,
    PaymentMethod,
    Price,
    Refund,
    Schedule,
    SchedulePhase,
    Subscription,
    TaxId,
)
from .render_common import JSON, line_description
from .renderer import renderer_for

#: (event type, data.object, data.previous_attributes or None, triggered by an API request)
EventRecord = tuple[str, JSON, JSON | None, bool]

_FIRST = (
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Radia",
    "Tim",
    "Margaret",
    "Linus",
    "Hedy",
    "John",
    "Katherine",
    "Dennis",
)
_LAST = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Perlman",
    "Berners-Lee",
    "Hamilton",
    "Torvalds",
    "Lamarr",
    "Backus",
    "Johnson",
)
_CITIES = (
    ("Berlin", "DE", "10115"),
    ("Paris", "FR", "75002"),
    ("Tokyo", "JP", "100-0005"),
    ("Austin", "US", "78701"),
    ("Lyon", "FR", "69002"),
    ("Osaka", "JP", "530-0001"),
)
_BRANDS = ("visa", "mastercard", "amex")


@dataclass(slots=True)
class WorldContext:
    """What every customer simulation shares: config, id tag, catalog and the time window."""

    config: WorldConfig
    tag: str
    catalog: Catalog
    start_ts: int
    end_ts: int
    versions: list[str]


@dataclass(slots=True)
class SignupPlan:
    """How a customer signs up (decided by its scenario)."""

    tier: int = 1
    interval: str = "month"
    interval_count: int = 1
    quantity: int = 1
    trial_days: int = 0
    with_payment_method: bool = True
    coupon: Coupon | None = None


def signup_time(ctx: WorldContext, idx: int) -> int:
    """When customer ``idx`` signs up: spread over the first third of the history, or over
    ``config.signup_months`` when set (the demo: all of it)."""
    months = ctx.config.signup_months or max(1, ctx.config.months // 3)
    window_end = add_months(ctx.start_ts, months)
    window = max(1, min(window_end, ctx.end_ts) - ctx.start_ts)
    return ctx.start_ts + int(mix64(ctx.config.seed * 1_000_003 + idx) % window)


class CustomerSim:
    """State and actions of one customer (see module docstring for the stepping model)."""

    def __init__(self, ctx: WorldContext, idx: int) -> None:
        from .scenarios import SCENARIOS

        self.ctx = ctx
        self.idx = idx
        self.scenario = SCENARIOS[idx % len(SCENARIOS)]
        self.rng = random.Random(f"{ctx.config.seed}:{idx}")
        self.signup_t = signup_time(ctx, idx)
        self.cust: Customer | None = None
        self.use_version(ctx.config.version_for(idx, ctx.versions, len(SCENARIOS)))
        self.out: list[EventRecord] = []
        self._agenda: list[tuple[int, int, Callable[[int], object]]] = []
        self._seq = 0
        self._ids = 0
        self.sub: Subscription | None = None
        self.schedule_obj: Schedule | None = None
        self.charges: list[Charge] = []
        self.invoices: list[Invoice] = []
        self.cycle = 0
        self.fail_cycles: set[int] = set()
        self.retries = 0
        upgrade = ctx.config.upgrade_of(self.api_version)
        if upgrade is not None:
            new_version, at = upgrade
            if at <= self.signup_t:
                self.use_version(new_version)
            else:
                self.at(at, lambda _t: self.use_version(new_version))

    def use_version(self, api_version: str) -> None:
        """Render this customer's events in ``api_version`` from now on (an endpoint upgrade
        mid-life switches it; the model state does not depend on the version)."""
        self.api_version = api_version
        self.r = renderer_for(api_version)
        self.basil = self.r.BASIL
        if self.cust is not None:
            self.cust.api_version = api_version

    # ----------------------------------------------------------------- stepping
    def run(self) -> Iterator[int]:
        """Yield the time of each next action; perform it when resumed."""
        from .scenarios import schedule_followups

        yield self.signup_t
        self.signup(self.signup_t)
        schedule_followups(self)
        end = self.ctx.end_ts
        while self._agenda:
            t, _, action = heapq.heappop(self._agenda)
            if t > end:
                return
            yield t
            action(t)

    def at(self, t: int, action: Callable[[int], object]) -> None:
        """Schedule ``action`` at time ``t`` (ties run in scheduling order)."""
        self._seq += 1
        heapq.heappush(self._agenda, (t, self._seq, action))

    def emit(self, etype: str, obj: JSON, prev: JSON | None = None, api: bool = True) -> None:
        """Record an event of the current step."""
        self.out.append((etype, obj, prev, api))

    def new_id(self, prefix: str) -> str:
        """Next unique id of this customer."""
        self._ids += 1
        return object_id(prefix, self.ctx.tag, self.idx, self._ids)

    @property
    def catalog(self) -> Catalog:
        """The world's catalog."""
        return self.ctx.catalog

    # ----------------------------------------------------------------- helpers
    def _c(self) -> Customer:
        assert self.cust is not None
        return self.cust

    def _s(self) -> Subscription:
        assert self.sub is not None
        return self.sub

    def change_customer(self, t: int, mutate: Callable[[Customer], None], api: bool = True) -> None:
        """Apply ``mutate`` and emit ``customer.updated`` with its previous attributes."""
        c = self._c()
        before = self.r.customer(c)
        mutate(c)
        after = self.r.customer(c)
        self.emit("customer.updated", after, previous_attributes(before, after), api)

    def change_sub(
        self,
        t: int,
        mutate: Callable[[Subscription], None],
        api: bool = True,
        extra: tuple[str, ...] = (),
    ) -> None:
        """Apply ``mutate`` and emit ``customer.subscription.updated`` (+ ``extra`` types)."""
        s = self._s()
        before = self.r.subscription(s)
        mutate(s)
        after = self.r.subscription(s)
        self.emit("customer.subscription.updated", after, previous_attributes(before, after), api)
        for etype in extra:
            self.emit(etype, after, None, api)

    def new_payment_method(self, t: int) -> PaymentMethod:
        """A fresh card for this customer (``card_`` ids on the legacy family, as in 2020)."""
        rng = self.rng
        return PaymentMethod(
            id=self.new_id("pm" if self.basil else "card"),
            brand=rng.choice(_BRANDS),
            last4=f"{rng.randrange(10_000):04d}",
            exp_month=rng.randint(1, 12),
            exp_year=2027 + rng.randint(0, 5),
            fingerprint=self.new_id("fp")[-16:],
            created=t,
            customer_id=self._c().id,
        )

    def attach_payment_method(self, t: int, make_default: bool = True) -> PaymentMethod:
        """Attach a new card (``payment_method.attached``) and make it the default."""
        c = self._c()
        pm = self.new_payment_method(t)
        self.emit("payment_method.attached", self.r.payment_method(pm, c))
        if make_default:

            def set_default(cu: Customer) -> None:
                cu.default_pm = pm
                cu.currency_set = True

            self.change_customer(t, set_default)
        return pm

    def active_discount(self, t: int) -> Discount | None:
        """The subscription's discount if still in effect at ``t``."""
        s = self.sub
        if s is None or s.discount is None:
            return None
        d = s.discount
        return d if d.end is None or d.end > t else None

    def new_invoice(
        self, t: int, reason: str, lines: list[Line], period_start: int, period_end: int
    ) -> Invoice:
        """Build an invoice (discount applied to non-proration lines) and remember it."""
        c = self._c()
        s = self.sub
        inv = Invoice(
            id=self.new_id("in"),
            number=f"{c.invoice_prefix}-{c.next_invoice_sequence:04d}",
            customer_id=c.id,
            subscription_id=s.id if s else None,
            billing_reason=reason,
            created=t,
            currency=c.currency,
            lines=lines,
            period_start=period_start,
            period_end=period_end,
            discount=self.active_discount(t),
        )
        c.next_invoice_sequence += 1
        if self.basil:
            inv.payment_id = self.new_id("inpay")
        disc = inv.discount
        if disc is not None:
            remaining_off = disc.coupon.amount_off or 0
            for line in lines:
                if line.proration or line.amount <= 0:
                    continue
                if disc.coupon.percent_off is not None:
                    line.discount_amount = round(line.amount * disc.coupon.percent_off / 100)
                else:
                    line.discount_amount = min(remaining_off, line.amount)
                    remaining_off -= line.discount_amount
        if s is not None:
            s.latest_invoice_id = inv.id
        self.invoices = [*self.invoices[-2:], inv]
        return inv

    def cycle_line(self, s: Subscription) -> Line:
        """The recurring line of the current period."""
        return Line(
            id=self.new_id("il"),
            price=s.price,
            quantity=s.quantity,
            amount=s.price.unit_amount * s.quantity,
            period_start=s.period_start,
            period_end=s.period_end,
            proration=False,
            description=line_description(s.price, s.quantity),
            subscription_item=s.item_id,
        )

    def invoice_json(self, inv: Invoice) -> JSON:
        """Render an invoice in this customer's family."""
        return self.r.invoice(inv, self._c(), self.ctx.config.account_name)

    def open_invoice(self, t: int, inv: Invoice, api: bool) -> None:
        """``invoice.created`` then ``invoice.finalized``."""
        self.emit("invoice.created", self.invoice_json(inv), None, api)
        inv.status = "open"
        inv.finalized_at = t
        inv.auto_advance = True
        self.emit("invoice.finalized", self.invoice_json(inv), None, api)

    def attempt_payment(self, t: int, inv: Invoice, fail: bool, api: bool) -> bool:
        """Charge the invoice's total; emits the charge/payment_intent/invoice events."""
        c = self._c()
        r = self.r
        if inv.total == 0:
            inv.status = "paid"
            inv.paid_at = t
            inv.next_payment_attempt = None
            self.emit("invoice.paid", self.invoice_json(inv), None, api)
            self.emit("invoice.payment_succeeded", self.invoice_json(inv), None, api)
            return True
        pi = inv.payment_intent
        if pi is None:
            pi = PaymentIntent(
                id=self.new_id("pi"),
                customer_id=c.id,
                invoice_id=inv.id,
                amount=inv.total,
                currency=inv.currency,
                created=t,
            )
            inv.payment_intent = pi
            self.emit("payment_intent.created", r.payment_intent(pi, c), None, api)
        pm = c.default_pm
        assert pm is not None, "invoices with an amount are only charged with a card on file"
        inv.attempt_count += 1
        ch = Charge(
            id=self.new_id("ch"),
            payment_intent_id=pi.id,
            invoice_id=inv.id,
            customer_id=c.id,
            amount=inv.total,
            currency=inv.currency,
            created=t,
            status="failed" if fail else "succeeded",
            pm=pm,
            balance_transaction=None if fail else self.new_id("txn"),
        )
        pi.charges = [*pi.charges[-2:], ch]
        if fail:
            pi.last_error = ch
            pi.status = "requires_payment_method"
            inv.next_payment_attempt = t + 3 * DAY
            self.emit("charge.failed", r.charge(ch, c), None, api)
            self.emit("payment_intent.payment_failed", r.payment_intent(pi, c), None, api)
            self.emit("invoice.payment_failed", self.invoice_json(inv), None, api)
            before = self.invoice_json(inv)
            inv.auto_advance = True
            after = self.invoice_json(inv)
            self.emit(
                "invoice.updated",
                after,
                previous_attributes(before, after) or {"next_payment_attempt": None},
                api,
            )
            return False
        pi.status = "succeeded"
        pi.pm = pm
        pi.last_error = None
        inv.status = "paid"
        inv.amount_paid = inv.total
        inv.paid_at = t
        inv.next_payment_attempt = None
        self.charges = [*self.charges[-2:], ch]
        self.emit("charge.succeeded", r.charge(ch, c), None, api)
        self.emit("payment_intent.succeeded", r.payment_intent(pi, c), None, api)
        if self.basil:
            from .render_basil import invoice_payment

            self.emit("invoice_payment.paid", invoice_payment(inv), None, api)
        self.emit("invoice.paid", self.invoice_json(inv), None, api)
        self.emit("invoice.payment_succeeded", self.invoice_json(inv), None, api)
        return True

    # ----------------------------------------------------------------- actions
    def signup(self, t: int) -> None:
        """Create customer, card, subscription and its first invoice."""
        from .scenarios import signup_plan

        plan = signup_plan(self)
        rng = self.rng
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        currency = self.ctx.config.currencies[self.idx % len(self.ctx.config.currencies)]
        c = Customer(
            idx=self.idx,
            id=self.new_id("cus"),
            api_version=self.api_version,
            basil=self.basil,
            currency=currency,
            created=t,
            name=f"{first} {last}",
            email=f"{first.lower()}.{last.lower()}{self.idx}@example.com",
            tenant_id=f"tenant-{self.idx:06d}",
            invoice_prefix=self.new_id("x")[-8:].upper(),
        )
        self.cust = c
        self.emit("customer.created", self.r.customer(c))
        if plan.with_payment_method:
            self.attach_payment_method(t)
        price = self.catalog.price(currency, plan.tier, plan.interval, plan.interval_count)
        trial_end = t + plan.trial_days * DAY if plan.trial_days else None
        s = Subscription(
            id=self.new_id("sub"),
            item_id=self.new_id("si"),
            item_created=t,
            customer_id=c.id,
            price=price,
            quantity=plan.quantity,
            status="trialing" if trial_end else "active",
            created=t,
            start_date=t,
            billing_cycle_anchor=trial_end or t,
            period_start=t,
            period_end=trial_end or add_interval(t, price.interval, price.interval_count),
            trial_start=t if trial_end else None,
            trial_end=trial_end,
            default_pm_id=None,
        )
        self.sub = s
        if plan.coupon is not None:
            s.discount = self.make_discount(t, plan.coupon)
            self.emit("customer.discount.created", self.r.discount(s.discount))
        if trial_end:
            line = Line(
                id=self.new_id("il"),
                price=price,
                quantity=s.quantity,
                amount=0,
                period_start=t,
                period_end=trial_end,
                proration=False,
                description=f"Trial period for {price.product.name}",
                subscription_item=s.item_id,
            )
            inv = self.new_invoice(t, "subscription_create", [line], t, t)
        else:
            inv = self.new_invoice(t, "subscription_create", [self.cycle_line(s)], t, t)
        if not c.currency_set:
            self.change_customer(t, lambda cu: setattr(cu, "currency_set", True))
        self.emit("customer.subscription.created", self.r.subscription(s))
        self.open_invoice(t, inv, api=True)
        self.attempt_payment(t, inv, fail=False, api=True)
        self.at(s.period_end, self.renew)

    def make_discount(self, t: int, coupon: Coupon) -> Discount:
        """A discount of ``coupon`` on the subscription starting at ``t``."""
        end = (
            add_months(t, coupon.duration_in_months)
            if coupon.duration == "repeating" and coupon.duration_in_months
            else None
        )
        return Discount(
            id=self.new_id("di"),
            coupon=coupon,
            customer_id=self._c().id,
            subscription_id=self._s().id,
            start=t,
            end=end,
        )

    def renew(self, t: int) -> None:
        """Period boundary: trial end, scheduled phase changes, renewal invoice and payment."""
        s = self.sub
        if s is None or s.status in ("canceled", "paused") or t != s.period_end:
            return
        if s.cancel_at_period_end:
            self.end_subscription(t, "cancellation_requested", None, api=False)
            return
        r = self.r
        before = r.subscription(s)
        pre: list[EventRecord] = []
        sc = self.schedule_obj
        if sc is not None and sc.status == "active":
            if len(sc.phases) > 1 and sc.phases[1].start == t:
                sc_before = r.schedule(sc, t - 1)
                s.price, s.quantity = sc.phases[1].price, sc.phases[1].quantity
                sc_after = r.schedule(sc, t)
                pre.append(
                    (
                        "subscription_schedule.updated",
                        sc_after,
                        previous_attributes(sc_before, sc_after),
                        False,
                    )
                )
            elif sc.phases[-1].end <= t:
                sc.status, sc.released_at, sc.released_subscription = "released", t, s.id
                s.schedule_id = None
                self.schedule_obj = None
                pre.append(("subscription_schedule.released", r.schedule(sc, t), None, False))
        d = s.discount
        if d is not None and d.end is not None and d.end <= t:
            pre.append(("customer.discount.deleted", r.discount(d), None, False))
            s.discount = None
        if s.status == "trialing":
            if self._c().default_pm is None:
                self.change_sub(
                    t,
                    lambda sub: setattr(sub, "status", "paused"),
                    api=False,
                    extra=("customer.subscription.paused",),
                )
                return
            s.status = "active"
        s.period_start = t
        s.period_end = add_interval(t, s.price.interval, s.price.interval_count)
        self.cycle += 1
        inv = self.new_invoice(t, "subscription_cycle", [self.cycle_line(s)], t, t)
        self.out.extend(pre)
        after = r.subscription(s)
        self.emit("customer.subscription.updated", after, previous_attributes(before, after), False)
        self.at(s.period_end, self.renew)
        if s.pause_behavior:
            self.emit("invoice.created", self.invoice_json(inv), None, False)
            inv.status, inv.voided_at, inv.finalized_at = "void", t, t
            self.emit("invoice.voided", self.invoice_json(inv), None, False)
            return
        self.open_invoice(t, inv, api=False)
        if not self.attempt_payment(t, inv, self.cycle in self.fail_cycles, api=False):
            self.change_sub(t, lambda sub: setattr(sub, "status", "past_due"), api=False)
            self.retries = 0
            self.at(t + 3 * DAY, lambda tt: self.retry(tt, inv))
        from .scenarios import maybe_extra_activity

        maybe_extra_activity(self, t)

    def retry(self, t: int, inv: Invoice) -> None:
        """Smart-retry of a failed invoice; the unrecovered scenario gives up after 3 tries."""
        s = self.sub
        if s is None or s.status == "canceled" or inv.status != "open":
            return
        self.retries += 1
        fail = self.scenario == "payment_unrecovered"
        if self.attempt_payment(t, inv, fail, api=False):
            self.change_sub(t, lambda sub: setattr(sub, "status", "active"), api=False)
        elif self.retries >= 2:

            def give_up(tt: int) -> None:
                before = self.invoice_json(inv)
                inv.status, inv.marked_uncollectible_at = "uncollectible", tt
                inv.next_payment_attempt = None
                after = self.invoice_json(inv)
                self.emit("invoice.marked_uncollectible", after, None, False)
                self.emit("invoice.updated", after, previous_attributes(before, after), False)
                self.end_subscription(tt, "payment_failed", None, api=False)

            self.at(t + 2 * DAY, give_up)
        else:
            self.at(t + 2 * DAY, lambda tt: self.retry(tt, inv))

    def end_subscription(self, t: int, reason: str, feedback: str | None, api: bool) -> None:
        """``customer.subscription.deleted`` (expiry at period end or immediate cancel)."""
        s = self._s()
        s.status = "canceled"
        s.ended_at = t
        s.canceled_at = s.canceled_at or t
        s.cancel_reason = reason
        s.cancel_feedback = feedback
        self.emit("customer.subscription.deleted", self.r.subscription(s), None, api)

    def change_price(self, t: int, price: Price, quantity: int, invoice_now: bool) -> None:
        """Upgrade / quantity change with prorations billed immediately when ``invoice_now``."""
        s = self._s()
        old_price, old_qty = s.price, s.quantity
        span = max(1, s.period_end - s.period_start)
        frac = max(0.0, (s.period_end - t) / span)

        def mutate(sub: Subscription) -> None:
            sub.price, sub.quantity = price, quantity

        self.change_sub(t, mutate)
        if not invoice_now:
            return
        credit = -round(old_price.unit_amount * old_qty * frac)
        debit = round(price.unit_amount * quantity * frac)
        lines = [
            Line(
                id=self.new_id("il"),
                price=old_price,
                quantity=old_qty,
                amount=credit,
                period_start=t,
                period_end=s.period_end,
                proration=True,
                description=f"Unused time on {old_qty} \u00d7 {old_price.product.name}",
                subscription_item=s.item_id,
                invoice_item=self.new_id("ii"),
            ),
            Line(
                id=self.new_id("il"),
                price=price,
                quantity=quantity,
                amount=debit,
                period_start=t,
                period_end=s.period_end,
                proration=True,
                description=f"Remaining time on {quantity} \u00d7 {price.product.name}",
                subscription_item=s.item_id,
                invoice_item=self.new_id("ii"),
            ),
        ]
        inv = self.new_invoice(t, "subscription_update", lines, t, t)
        self.open_invoice(t, inv, api=True)
        self.attempt_payment(t, inv, fail=False, api=True)

    def schedule_downgrade(self, t: int) -> None:
        """Create a schedule whose next phase moves to a lower tier at the period end."""
        s = self._s()
        lower = self.catalog.price(
            s.price.currency, s.price.tier - 1, s.price.interval, s.price.interval_count
        )
        nxt_end = add_interval(s.period_end, lower.interval, lower.interval_count)
        sc = Schedule(
            id=self.new_id("sub_sched"),
            subscription_id=s.id,
            customer_id=s.customer_id,
            created=t,
            phases=[
                SchedulePhase(s.period_start, s.period_end, s.price, s.quantity),
                SchedulePhase(s.period_end, nxt_end, lower, s.quantity),
            ],
        )
        self.schedule_obj = sc
        self.emit("subscription_schedule.created", self.r.schedule(sc, t))
        self.change_sub(t, lambda sub: setattr(sub, "schedule_id", sc.id))

    def cancel_downgrade(self, t: int) -> None:
        """Drop the pending phase, then release the schedule (the price stays)."""
        sc = self.schedule_obj
        s = self._s()
        if sc is None or sc.status != "active":
            return
        before = self.r.schedule(sc, t)
        sc.phases = sc.phases[:1]
        after = self.r.schedule(sc, t)
        self.emit("subscription_schedule.updated", after, previous_attributes(before, after))
        sc.status, sc.released_at, sc.released_subscription = "released", t, s.id
        self.schedule_obj = None
        self.emit("subscription_schedule.released", self.r.schedule(sc, t))
        self.change_sub(t, lambda sub: setattr(sub, "schedule_id", None))

    def set_cancel_at_period_end(self, t: int, value: bool) -> None:
        """Request (``True``) or withdraw (``False``) cancellation at period end."""
        s = self._s()
        if s.status == "canceled":
            return

        def mutate(sub: Subscription) -> None:
            sub.cancel_at_period_end = value
            sub.cancel_at = sub.period_end if value else None
            sub.canceled_at = t if value else None
            sub.cancel_reason = "cancellation_requested" if value else None

        self.change_sub(t, mutate)

    def refund(self, t: int, ch: Charge, amount: int, reason: str | None) -> Refund | None:
        """Refund ``amount`` of ``ch`` (``charge.refunded`` + ``refund.created``)."""
        amount = min(amount, ch.amount - ch.amount_refunded)
        if amount <= 0:
            return None
        c = self._c()
        rf = Refund(
            id=self.new_id("re"),
            charge_id=ch.id,
            payment_intent_id=ch.payment_intent_id,
            amount=amount,
            currency=ch.currency,
            created=t,
            reason=reason,
            customer_id=c.id,
            balance_transaction=self.new_id("txn"),
        )
        before = self.r.charge(ch, c)
        ch.refunds = [*ch.refunds, rf]
        ch.amount_refunded += amount
        after = self.r.charge(ch, c)
        self.emit("charge.refunded", after, previous_attributes(before, after))
        self.emit("refund.created", self.r.refund(rf))
        return rf

    def credit_note(self, t: int) -> None:
        """Credit a quarter of the latest paid invoice back to the card."""
        inv = next(
            (i for i in reversed(self.invoices) if i.status == "paid" and i.charge is not None),
            None,
        )
        if inv is None or inv.charge is None:
            return
        ch = inv.charge
        amount = max(1, inv.total // 4)
        if ch.amount - ch.amount_refunded < amount:
            return
        c = self._c()
        cn = CreditNote(
            id=self.new_id("cn"),
            number=f"{inv.number}-CN-01",
            invoice=inv,
            customer_id=c.id,
            amount=amount,
            currency=inv.currency,
            created=t,
            reason="product_unsatisfactory",
            line_id=self.new_id("cnli"),
            balance_transaction=self.new_id("cbtxn"),
        )
        rf = self.refund(t, ch, amount, "requested_by_customer")
        cn.refund_id = rf.id if rf else None
        self.emit("credit_note.created", self.r.credit_note(cn))
        before = self.invoice_json(inv)
        inv.post_payment_credit_notes_amount += amount
        after = self.invoice_json(inv)
        self.emit("invoice.updated", after, previous_attributes(before, after))

    def set_billing_info(self, t: int) -> None:
        """Billing address (``customer.updated``) plus a tax id (``customer.tax_id.created``)."""
        city, country, postal = self.rng.choice(_CITIES)

        def mutate(cu: Customer) -> None:
            cu.address = {
                "city": city,
                "country": country,
                "line1": f"{self.idx % 97 + 1} Main St",
                "line2": None,
                "postal_code": postal,
                "state": None,
            }

        self.change_customer(t, mutate)
        c = self._c()
        tx = TaxId(
            id=self.new_id("txi"),
            customer_id=c.id,
            country=country,
            type="eu_vat" if country in ("DE", "FR") else "jp_cn" if country == "JP" else "us_ein",
            value=f"{country}{mix64(self.idx) % 10**9:09d}",
            created=t,
        )
        c.tax_ids.append(tx.id)
        self.emit("customer.tax_id.created", self.r.tax_id(tx))

    def change_payment_method(self, t: int) -> None:
        """Attach a new default card and detach the old one."""
        c = self._c()
        old = c.default_pm
        self.attach_payment_method(t)
        if old is not None:
            old.customer_id = None
            obj = self.r.payment_method(old, None)
            self.emit("payment_method.detached", obj, {"customer": c.id})

    def pause(self, t: int, behavior: str | None) -> None:
        """Set (``"void"``) or clear (``None``) ``pause_collection``."""
        s = self._s()
        if s.status == "canceled":
            return
        self.change_sub(t, lambda sub: setattr(sub, "pause_behavior", behavior))

    def resume_paused(self, t: int) -> None:
        """A trial that ended without a card gets one and resumes (new billing anchor)."""
        s = self._s()
        if s.status != "paused":
            return
        self.attach_payment_method(t)

        def mutate(sub: Subscription) -> None:
            sub.status = "active"
            sub.billing_cycle_anchor = sub.period_start = t
            sub.period_end = add_interval(t, sub.price.interval, sub.price.interval_count)

        before = self.r.subscription(s)
        mutate(s)
        inv = self.new_invoice(t, "subscription_cycle", [self.cycle_line(s)], t, t)
        after = self.r.subscription(s)
        self.emit("customer.subscription.resumed", after, None)
        self.emit("customer.subscription.updated", after, previous_attributes(before, after))
        self.open_invoice(t, inv, api=True)
        self.attempt_payment(t, inv, fail=False, api=True)
        self.at(s.period_end, self.renew)

    def apply_coupon(self, t: int, coupon: Coupon) -> None:
        """Apply a coupon to the running subscription."""
        s = self._s()
        if s.status == "canceled":
            return
        d = self.make_discount(t, coupon)
        self.emit("customer.discount.created", self.r.discount(d))
        self.change_sub(t, lambda sub: setattr(sub, "discount", d))
