"""THE MRR function (DESIGN.md sections 3.7 and 4). Every MRR figure in the suite comes from
``compute_mrr``; nothing else may re-implement the formula.

Rules (monthly recurring revenue, integer minor units of the subscription's currency)
------------------------------------------------------------------------------------
1. **Items.** MRR is the sum over the subscription's items of
   ``unit_amount x quantity x monthly_factor(interval, interval_count)`` where the factor is
   ``month: 1/n``, ``year: 1/(12n)``, ``week: 52/(12n)``, ``day: 365/(12n)`` for
   ``interval_count = n``. ``unit_amount_decimal`` is used when present (sub-minor-unit
   prices). Metered items (``usage_type = "metered"``) and items without a recurring interval
   contribute 0 (usage is not committed revenue). Items without a unit price (tiered
   pricing, unexpanded prices) contribute 0 and set the ``unpriced_item`` flag.
2. **Currency.** The subscription's currency (else its first item's) is the MRR currency and
   is passed through. Items in another currency (after rule 9) are ignored and flagged
   (``mixed_currency``); currencies are never mixed. Zero-decimal currencies need no special
   case: the minor unit of JPY is the yen.
3. **Discounts** apply while active: a discount is skipped when its coupon's ``duration`` is
   ``"once"`` (it affects one invoice, not the run-rate), when its ``end`` is at or before
   ``as_of``, or when the payload only references it by id (terms unknown: flag
   ``discount_terms_unknown``). Item-level discounts apply to their item first, then the
   subscription-level ones to the total. Percent-offs multiply (``x (1 - p/100)``), then
   amount-offs subtract. ``amount_off`` is an amount *per invoice*, i.e. per billing period,
   so it is normalised with the same monthly factor as the prices it discounts: 1200 off a
   yearly plan is 100 off per month; the subscription-level factor is that of its first
   priced licensed item (Stripe requires one billing interval per subscription). An
   amount-off in another currency is ignored (``discount_currency_mismatch``). A discounted
   amount never goes below 0.
4. **Rounding.** All of the above is exact rational arithmetic (``fractions.Fraction``);
   the result is rounded **once per subscription, at the end, half to even**.
5. **Committed MRR is 0** once ended (``status`` ``canceled`` or ``incomplete_expired``, or
   ``ended_at`` set), while ``trialing``, while ``incomplete`` (first payment not made), and
   while paused (``status`` ``paused`` or ``pause_collection`` set: nothing is collected).
   ``past_due`` and ``unpaid`` still count: the commitment stands until Stripe ends it.
6. **Forward MRR** (what the next period will bill):
   0 once ended; 0 when cancelling at period end (``cancel_at_period_end``, or ``cancel_at``
   at or before the current period end, or with no known period end); 0 while paused;
   else the MRR of the **scheduled items** when the payload carries them with prices
   (``pending_update.subscription_items``, or the next phase of an *expanded* subscription
   schedule whose item prices are expanded), with the subscription's discounts, which
   covers a queued downgrade (and, symmetrically, a queued upgrade); else the current
   items' MRR, which for a trial is the MRR after the trial. A pending update that carries
   discounts (dahlia and later: ``pending_update.discount``/``discounts``) replaces the
   subscription's discounts in the forward MRR, also when it changes no item (flag
   ``scheduled_change``; ids without terms flag ``discount_terms_unknown``).
7. **Tax never enters MRR** (as in ChartMogul, Stripe Billing and ProfitWell, and as the
   ledger's net revenue, ``payments.amount_ex_tax``). Exclusive tax is added on top of the
   price, so it never was in it. An item whose applicable tax rates (the item's
   ``tax_rates``, else the subscription's ``default_tax_rates``) include rates with
   ``inclusive: true`` contributes its (discounted) amount divided by ``1 + sum(p)/100`` of
   those rates. A rate given only by id has an unknown percentage: the gross amount is kept
   and ``tax_rate_unknown`` flagged. A price with ``tax_behavior = "inclusive"`` under
   automatic tax (``automatic_tax.enabled``, no rate in the payload) is kept gross and
   flagged ``inclusive_tax_unknown`` (the rate Stripe Tax will pick is not in the payload;
   never guessed). Subscription-level discounts apply to the gross total and are shared
   pro rata between items, as Stripe allocates them across lines, before tax is taken out.
8. **Package pricing.** A price with ``transform_quantity`` bills
   ``ceil(quantity / divide_by)`` (``round = "up"``) or ``floor(...)`` (``"down"``) packages
   of ``unit_amount``; MRR uses that billed quantity.
9. **Multi-currency prices.** An item whose price's default currency differs from the
   subscription's is priced from ``price.currency_options[<subscription currency>]`` (the
   resolver does this); when the payload has no such option the item contributes nothing,
   is flagged ``currency_option_missing`` (and ``mixed_currency``), and is never guessed.
10. **Discounts known only by id** (subscription-level, item-level or on a schedule phase)
    are not applied and set ``discount_terms_unknown``: MRR is then an upper bound.
11. **Schedule phases** are priced by this same function (``phase_mrr``): the phase's
    items, with the phase's own discounts when the phase states some, else the
    subscription's, so the forward MRR of a subscription with an expanded schedule and the
    ``forward_mrr`` of the schedule's own rows agree.

Classification-side rules that use MRR (stated here so the MRR story is in one place; the
classifier implements them):

* A ``customer.subscription.deleted`` row's ``previous_amount`` is the committed MRR the
  subscription had just before it ended (rule 5 applied to its state then): 0 for a
  subscription that was trialing, ``incomplete`` (shown as ``incomplete_expired`` on
  deletion), paused or had ``pause_collection`` set, so its delta is 0 as well.
* A schedule change whose direction is unknown (phase prices not in the payload and the
  price set changes) is never a ``SubscriptionDowngradeScheduled``: it is a ``NoOp`` row
  flagged ``schedule_direction_unknown`` with no forward MRR, so forward MRR does not drop.
* A discount that ended is shown as an MRR step: the state before the change is priced as of
  just before the earliest ``end`` of the discounts that the change removed, so the event
  that shows the subscription without the expired coupon is an upgrade with previous and new
  amount and the delta, not a ``NoOp``.

Other money rules of the ledger (listed here so the whole money story is in one list; each is
implemented once, where named):

* **Refund amounts** (classifier): ``charge.refunded`` reports this event's refund from
  ``previous_attributes.amount_refunded`` or the charge's refund list; without either (API
  2022-11-15+ has no list) the amount is ``NULL`` and flagged ``refund_amount_unknown``, never
  the running total. Net revenue (``payments.amount_refunded``, projection) is the larger of
  the refund objects recorded and the charges' cumulative ``amount_refunded``, never the sum.
* **Latest wins, but never erases** (``services/ledger/tables.py``, "sticky" columns): facts
  that do not change once known (a refund's customer and charge, creation times, ...) keep
  their value when a later object lacks the field.
* **Previews are not money**: ``invoice.upcoming`` (no invoice id) is a ``NoOp`` and no row.
* **Rounding** (``services/ledger/domain/money.py``): half to even, once, at the end; SQL
  uses ``ledger.round_half_even``.
* **Nothing is lost silently** (``services/ledger/replay.py``): a replay or verification
  counts and logs (with the event id) each archived event that is not a readable Stripe event,
  and dead-letters any other failure as the live consumer does.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from services.ledger.domain.money import round_half_even
from services.ledger.domain.normalised import (
    DiscountSnapshot,
    SchedulePhase,
    ScheduleSnapshot,
    SubscriptionItem,
    SubscriptionSnapshot,
    TaxRateSnapshot,
)
from services.ledger.domain.rules import ENDED_STATUSES, is_cancelling_at, is_ended

__all__ = [
    "ENDED_STATUSES",
    "MrrResult",
    "ScheduledChange",
    "TaxContext",
    "committed_before_end",
    "compute_mrr",
    "current_and_next_phase",
    "is_cancelling",
    "is_paused",
    "monthly_factor",
    "phase_items",
    "phase_mrr",
    "scheduled_change",
    "scheduled_items",
]

_ZERO_COMMITTED_STATUSES = frozenset({"trialing", "incomplete", "paused"})

_MONTHS_PER_INTERVAL: dict[str, Fraction] = {
    "month": Fraction(1),
    "year": Fraction(1, 12),
    "week": Fraction(52, 12),
    "day": Fraction(365, 12),
}


@dataclass(frozen=True, slots=True)
class MrrResult:
    committed: int
    forward: int
    currency: str | None
    flags: tuple[str, ...] = ()
    base: int = 0  # the items' MRR after discounts, before the status rules (5, 6)


def monthly_factor(interval: str | None, interval_count: int = 1) -> Fraction | None:
    """Multiplier turning one billing period's amount into a monthly amount."""
    if interval is None or interval not in _MONTHS_PER_INTERVAL:
        return None
    return _factor(interval, interval_count if interval_count >= 1 else 1)


@functools.lru_cache(maxsize=256)
def _factor(interval: str, count: int) -> Fraction:
    # A handful of (interval, count) pairs occur; a Fraction division per item was ~5% of a
    # replay's CPU. Fractions are immutable, so sharing one is safe.
    return _MONTHS_PER_INTERVAL[interval] / count


def _exact(value: Fraction | int) -> Fraction | int:
    """``value`` as an ``int`` when it is whole (the common case: arithmetic on ints is ~20x
    cheaper than on Fractions), else unchanged. Exact either way: same results."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return value.numerator
    return value


def _unit_price(item: SubscriptionItem) -> Fraction | int | None:
    """The exact unit price: ``unit_amount_decimal`` when present (sub-minor-unit prices)."""
    decimal = item.unit_amount_decimal
    if decimal is not None:
        numerator, denominator = decimal.as_integer_ratio()
        return numerator if denominator == 1 else Fraction(numerator, denominator)
    return item.unit_amount


def _round_half_even(value: Fraction | int) -> int:
    return round_half_even(value)


def _active(discount: DiscountSnapshot, as_of: int | None) -> bool:
    if discount.duration == "once":
        return False
    return not (discount.end is not None and as_of is not None and discount.end <= as_of)


def _apply_discounts(
    amount: Fraction | int,
    discounts: Iterable[DiscountSnapshot],
    *,
    currency: str | None,
    factor: Fraction | int,
    as_of: int | None,
    flags: set[str],
) -> Fraction | int:
    active = [d for d in discounts if _active(d, as_of)]
    if not active:
        return max(amount, 0)
    for d in active:
        if d.percent_off is not None:
            pct = Fraction(d.percent_off)
            pct = min(max(pct, Fraction(0)), Fraction(100))
            amount = amount * (1 - pct / 100)
    for d in active:
        if d.percent_off is None and d.amount_off is not None:
            if d.currency is not None and currency is not None and d.currency != currency:
                flags.add("discount_currency_mismatch")
                continue
            amount = amount - Fraction(d.amount_off) * factor
    return max(amount, Fraction(0))


def _billed_quantity(item: SubscriptionItem) -> int:
    """The quantity Stripe bills: the item's quantity, in packages when the price says so."""
    quantity = item.quantity if item.quantity is not None and item.quantity > 0 else 0
    if item.transform_divide_by is None:
        return quantity
    packages = Fraction(quantity, item.transform_divide_by)
    if item.transform_round == "down":
        return math.floor(packages)
    return math.ceil(packages)  # "up" is Stripe's only other choice


def _net_factor(item: SubscriptionItem, tax: TaxContext, flags: set[str]) -> Fraction | None:
    """What share of the item's amount is not tax (rule 7); ``None`` for all of it (no
    inclusive tax), which keeps the common case free of extra arithmetic."""
    rates = item.tax_rates or tax.default_rates
    inclusive = [r for r in rates if r.inclusive is True]
    if any(r.inclusive is None or (r.inclusive and r.percentage is None) for r in rates):
        # a rate known only by id: whether it is inclusive, and how much, is unknown
        flags.add("tax_rate_unknown")
        return None
    if inclusive:
        total = sum((Fraction(r.percentage or 0) for r in inclusive), Fraction(0))
        return 1 / (1 + total / 100)
    if item.tax_behavior == "inclusive" and tax.automatic and not rates:
        flags.add("inclusive_tax_unknown")
    return None


@dataclass(frozen=True, slots=True)
class TaxContext:
    """The subscription-level tax settings items fall back on (rule 7)."""

    default_rates: tuple[TaxRateSnapshot, ...] = ()
    automatic: bool = False


_NO_TAX = TaxContext()


def _items_mrr(
    items: Iterable[SubscriptionItem],
    discounts: Iterable[DiscountSnapshot],
    *,
    currency: str | None,
    as_of: int | None,
    flags: set[str],
    tax: TaxContext = _NO_TAX,
) -> Fraction | int:
    # Sums start as ints and stay ints while every amount is whole (monthly prices without
    # percent-offs); any fraction turns them into exact Fractions. Same values either way.
    gross_total: Fraction | int = 0
    net_total: Fraction | int = 0
    taxed = False  # whether any item's amount contains inclusive tax
    sub_factor: Fraction | int | None = None
    for item in items:
        if item.usage_type == "metered":
            continue
        fraction = monthly_factor(item.interval, item.interval_count)
        if fraction is None:
            flags.add("non_recurring_item")
            continue
        if item.currency_option_missing:
            flags.add("currency_option_missing")
        if currency is not None and item.currency is not None and item.currency != currency:
            flags.add("mixed_currency")
            continue
        unit = _unit_price(item)
        if unit is None:
            flags.add("unpriced_item")
            continue
        if item.discount_refs_unresolved:
            flags.add("discount_terms_unknown")
        factor = _exact(fraction)
        amount = _exact(unit * _billed_quantity(item) * factor)
        amount = _apply_discounts(
            amount, item.discounts, currency=currency, factor=factor, as_of=as_of, flags=flags
        )
        if sub_factor is None:
            sub_factor = factor
        gross_total += amount
        net = _net_factor(item, tax, flags)
        if net is None:
            net_total += amount
        else:
            taxed = True
            net_total += amount * net
    discounted = _apply_discounts(
        gross_total,
        discounts,
        currency=currency,
        factor=sub_factor if sub_factor is not None else 1,
        as_of=as_of,
        flags=flags,
    )
    if not taxed:
        return discounted
    if gross_total == 0:
        return 0
    return Fraction(discounted) * net_total / gross_total


def _currency_of(sub: SubscriptionSnapshot) -> str | None:
    if sub.currency is not None:
        return sub.currency
    return next((i.currency for i in sub.items if i.currency is not None), None)


def current_and_next_phase(
    schedule: ScheduleSnapshot, at: int | None
) -> tuple[SchedulePhase | None, SchedulePhase | None]:
    """The phase in force at ``at`` (else the schedule's ``current_phase``) and the one after."""
    phases = sorted(
        (p for p in schedule.phases if p.start_date is not None),
        key=lambda p: (p.start_date or 0, p.end_date or 0),
    )
    current: SchedulePhase | None = None
    if at is not None:
        for phase in phases:
            start = phase.start_date or 0
            if start <= at and (phase.end_date is None or at < phase.end_date):
                current = phase
                break
    if current is None and schedule.current_phase_start is not None:
        current = next((p for p in phases if p.start_date == schedule.current_phase_start), None)
    if current is None or current.end_date is None:
        return current, None
    following = next((p for p in phases if (p.start_date or 0) >= (current.end_date or 0)), None)
    return current, following


def phase_items(phase: SchedulePhase) -> tuple[SubscriptionItem, ...] | None:
    """The phase's items with prices, or ``None`` unless every item's price is expanded."""
    items: list[SubscriptionItem] = []
    for entry in phase.items:
        if entry.price is None:
            return None
        items.append(entry.price)
    return tuple(items)


@dataclass(frozen=True, slots=True)
class ScheduledChange:
    """Items (and the discounts that will apply to them) a subscription will switch to."""

    items: tuple[SubscriptionItem, ...]
    discounts: tuple[DiscountSnapshot, ...]
    discount_refs_unresolved: int = 0


def _phase_change(
    phase: SchedulePhase,
    discounts: tuple[DiscountSnapshot, ...],
    unresolved: int,
) -> ScheduledChange | None:
    items = phase_items(phase)
    if items is None:
        return None
    if phase.discounts or phase.discount_refs_unresolved:  # rule 11: the phase's own
        return ScheduledChange(items, phase.discounts, phase.discount_refs_unresolved)
    return ScheduledChange(items, discounts, unresolved)


def phase_mrr(
    phase: SchedulePhase,
    *,
    currency: str | None = None,
    discounts: Iterable[DiscountSnapshot] = (),
    as_of: int | None = None,
    flags: set[str] | None = None,
) -> int | None:
    """MRR a schedule phase would commit (rule 11: the phase's own discounts when it states
    some, else ``discounts``), or ``None`` when its prices are not in the payload."""
    change = _phase_change(phase, tuple(discounts), 0)
    if change is None:
        return None
    cur = currency or phase.currency or next((i.currency for i in change.items if i.currency), None)
    found: set[str] = set() if flags is None else flags
    if change.discount_refs_unresolved:
        found.add("discount_terms_unknown")
    return _round_half_even(
        _items_mrr(change.items, change.discounts, currency=cur, as_of=as_of, flags=found)
    )


def scheduled_change(sub: SubscriptionSnapshot, as_of: int | None = None) -> ScheduledChange | None:
    """What the subscription is scheduled to switch to, when the payload carries its prices."""
    update = sub.pending_update
    if update is not None:
        # Discounts of a pending update (dahlia and later) replace the subscription's, also
        # when the update changes no item (rule 6).
        discounts, unresolved = sub.discounts, sub.discount_refs_unresolved
        if update.discounts is not None:
            discounts, unresolved = update.discounts, update.discount_refs_unresolved
        pending = update.subscription_items
        if pending and all(
            i.unit_amount is not None or i.unit_amount_decimal is not None for i in pending
        ):
            return ScheduledChange(pending, discounts, unresolved)
        if update.discounts is not None:
            return ScheduledChange(sub.items, discounts, unresolved)
    if sub.schedule is not None:
        at = as_of if as_of is not None else sub.current_period_start
        _, following = current_and_next_phase(sub.schedule, at)
        if following is not None:
            return _phase_change(following, sub.discounts, sub.discount_refs_unresolved)
    return None


def scheduled_items(
    sub: SubscriptionSnapshot, as_of: int | None = None
) -> tuple[SubscriptionItem, ...] | None:
    """Items the subscription is scheduled to switch to, when the payload carries them."""
    change = scheduled_change(sub, as_of)
    return change.items if change is not None else None


def is_cancelling(sub: SubscriptionSnapshot) -> bool:
    """THE "cancelling" rule: set to end at period end, or ``cancel_at`` at or before the
    current period end (or with no known period end)."""
    return is_cancelling_at(sub.cancel_at_period_end, sub.cancel_at, sub.current_period_end)


def is_paused(sub: SubscriptionSnapshot) -> bool:
    """Paused: ``status = paused`` or ``pause_collection`` set (nothing is collected)."""
    return sub.status == "paused" or sub.pause_collection is not None


#: The last few results by (snapshot identity, ``as_of``): one subscription event asks for
#: the same snapshot's MRR up to four times (the classifier's components, the read-model
#: row). Snapshots and results are frozen, and each entry holds its snapshot, so an id is
#: never reused while its entry lives: the same answer, computed once.
_RECENT: dict[tuple[int, int | None], tuple[SubscriptionSnapshot, MrrResult]] = {}
_RECENT_LIMIT = 8


def compute_mrr(sub: SubscriptionSnapshot, *, as_of: int | None = None) -> MrrResult:
    """Committed and forward MRR of ``sub`` (rules in the module docstring).

    ``as_of`` (epoch seconds, normally the event's ``created``) only decides whether a
    discount with an ``end`` has expired and which schedule phase is current; pass the same
    value and the result is the same, always.
    """
    key = (id(sub), as_of)
    recent = _RECENT.get(key)
    if recent is not None and recent[0] is sub:
        return recent[1]
    result = _compute_mrr(sub, as_of)
    if len(_RECENT) >= _RECENT_LIMIT:
        _RECENT.clear()
    _RECENT[key] = (sub, result)
    return result


def _compute_mrr(sub: SubscriptionSnapshot, as_of: int | None) -> MrrResult:
    flags: set[str] = set()
    currency = _currency_of(sub)
    tax = TaxContext(sub.default_tax_rates, sub.automatic_tax)
    if sub.discount_refs_unresolved:
        flags.add("discount_terms_unknown")
    base = _round_half_even(
        _items_mrr(sub.items, sub.discounts, currency=currency, as_of=as_of, flags=flags, tax=tax)
    )
    ended = is_ended(sub.status, sub.ended_at)
    if ended:
        return MrrResult(0, 0, currency, tuple(sorted({*flags, "ended"})), base)
    paused = is_paused(sub)
    committed = 0 if (sub.status in _ZERO_COMMITTED_STATUSES or paused) else base
    if sub.status == "trialing":
        flags.add("trialing")
    if paused:
        flags.add("paused")

    if is_cancelling(sub):
        flags.add("cancelling")
        forward = 0
    elif paused:
        forward = 0
    else:
        upcoming = scheduled_change(sub, as_of)
        if upcoming is not None:
            flags.add("scheduled_change")
            if upcoming.discount_refs_unresolved:
                flags.add("discount_terms_unknown")
            forward = _round_half_even(
                _items_mrr(
                    upcoming.items,
                    upcoming.discounts,
                    currency=currency,
                    as_of=as_of,
                    flags=flags,
                    tax=tax,
                )
            )
        else:
            forward = base
    return MrrResult(committed, forward, currency, tuple(sorted(flags)), base)


def committed_before_end(sub: SubscriptionSnapshot, *, status: str | None, as_of: int) -> int:
    """Committed MRR the subscription had just before it ended, in status ``status`` (the
    previous status when known): rule 5 applied to that state, so revenue that never was
    committed (trial, incomplete, paused) is 0."""
    before = sub._replace(
        status=status,
        ended_at=None,
        canceled_at=None,
        cancel_at=None,
        cancel_at_period_end=False,
    )
    return compute_mrr(before, as_of=as_of).committed
