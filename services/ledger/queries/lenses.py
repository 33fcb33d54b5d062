"""Which billing events each lens of ListBillingEvents shows (the lenses overlap on purpose).

* ``mrr_impact``: ``amount_delta <> 0`` (committed MRR moved), or a type that changes committed
  or forward MRR: ``MRR_TYPES`` below. A renewal at an unchanged price is not MRR impact.
* ``subscription_state``: the twelve ``Subscription*`` lifecycle types (``STATE_TYPES``).
* ``other``: rows in neither set: payments (failed, recovered, refunded), billing info,
  payment methods, and ``Unclassified`` rows without an amount delta.
* ``NoOp`` rows are hidden from every lens unless explicitly asked for; asked for, they land
  in ``other`` (or ``mrr_impact`` if they carry a delta, which the classifier never does).

So an upgrade is in ``mrr_impact`` and ``subscription_state``; a ``SubscriptionPastDue`` only
in ``subscription_state``; a ``PaymentRefunded`` only in ``other``.
"""

from __future__ import annotations

import enum

from sqlalchemy import ColumnElement, and_, false, not_, or_, true

from services.ledger.domain.classifier import BillingEventType as T

MRR_TYPES: frozenset[str] = frozenset(
    {
        T.SubscriptionCreated,
        T.SubscriptionUpgraded,
        T.SubscriptionDowngraded,
        T.SubscriptionDowngradeScheduled,
        T.SubscriptionDowngradeCancelled,
        T.SubscriptionCancelled,
        T.SubscriptionReactivated,
        T.SubscriptionExpired,
        T.SubscriptionImmediatelyCancelled,
        T.SubscriptionSuspended,
    }
)
STATE_TYPES: frozenset[str] = frozenset(t.value for t in T if t.value.startswith("Subscription"))
NOOP = T.NoOp.value


class Lens(enum.StrEnum):
    ALL = "all"
    MRR_IMPACT = "mrr_impact"
    SUBSCRIPTION_STATE = "subscription_state"
    OTHER = "other"


def lenses_of(event_type: str, has_delta: bool) -> list[str]:
    """The lenses a row belongs to (besides ``all``), in a fixed order."""
    found = []
    mrr = has_delta or event_type in MRR_TYPES
    state = event_type in STATE_TYPES
    if mrr:
        found.append(Lens.MRR_IMPACT.value)
    if state:
        found.append(Lens.SUBSCRIPTION_STATE.value)
    if not mrr and not state:
        found.append(Lens.OTHER.value)
    return found


def lens_condition(
    lens: Lens,
    event_type: ColumnElement[str],
    has_delta: ColumnElement[bool],
    include_noop: bool,
) -> ColumnElement[bool]:
    """SQL for "row in lens" over an event-type column and an "amount delta <> 0" column."""
    mrr = or_(has_delta, event_type.in_(sorted(MRR_TYPES)))
    state = event_type.in_(sorted(STATE_TYPES))
    if lens is Lens.MRR_IMPACT:
        cond: ColumnElement[bool] = mrr
    elif lens is Lens.SUBSCRIPTION_STATE:
        cond = state
    elif lens is Lens.OTHER:
        cond = and_(not_(mrr), not_(state))
    else:
        cond = true()
    if not include_noop:
        cond = and_(cond, event_type != NOOP)
    return cond if cond is not None else false()


__all__ = ["MRR_TYPES", "NOOP", "STATE_TYPES", "Lens", "lens_condition", "lenses_of"]
