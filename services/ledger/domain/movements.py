"""MRR movement categories derived from ledger rows (DESIGN.md section 4).

Rules, for one subscription, comparing committed MRR before and after a row (same currency):
* before 0 (or unknown/None) and after > 0: ``reactivation`` if the subscription has had
  committed MRR before (``had_mrr_before``) or the row is a SubscriptionReactivated; else
  ``new`` (a trial converting to paid is ``new``: the trial never committed revenue).
* before > 0 and after 0: ``churn``.
* both > 0: ``expansion`` when after > before, ``contraction`` when after < before.
* no change: no movement (``None``).
The amount of a movement is ``after - before`` (negative for contraction and churn).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.ledger.domain.classifier import BillingEventType, Classification

__all__ = ["MrrMovement", "MrrMovementCategory", "movement_for_row", "mrr_movement"]


class MrrMovementCategory(enum.StrEnum):
    NEW = "new"
    EXPANSION = "expansion"
    CONTRACTION = "contraction"
    CHURN = "churn"
    REACTIVATION = "reactivation"


@dataclass(frozen=True, slots=True)
class MrrMovement:
    category: MrrMovementCategory
    amount: int  # after - before, minor units


def mrr_movement(
    previous_mrr: int | None,
    new_mrr: int,
    *,
    had_mrr_before: bool = False,
    event_type: BillingEventType | None = None,
) -> MrrMovement | None:
    """The movement from ``previous_mrr`` to ``new_mrr`` (rules in the module docstring)."""
    before = previous_mrr or 0
    if new_mrr == before:
        return None
    delta = new_mrr - before
    if before <= 0 < new_mrr:
        if had_mrr_before or event_type is BillingEventType.SubscriptionReactivated:
            return MrrMovement(MrrMovementCategory.REACTIVATION, delta)
        return MrrMovement(MrrMovementCategory.NEW, delta)
    if new_mrr <= 0 < before:
        return MrrMovement(MrrMovementCategory.CHURN, delta)
    if before > 0 and new_mrr > 0:
        category = MrrMovementCategory.EXPANSION if delta > 0 else MrrMovementCategory.CONTRACTION
        return MrrMovement(category, delta)
    return None


def movement_for_row(
    row: Classification, previous_mrr: int | None, *, had_mrr_before: bool = False
) -> MrrMovement | None:
    """Movement caused by ``row`` given the subscription's committed MRR before it.

    Rows without subscription state (``committed_mrr_after is None``) carry the MRR forward
    and cause no movement.
    """
    if row.committed_mrr_after is None:
        return None
    return mrr_movement(
        previous_mrr,
        row.committed_mrr_after,
        had_mrr_before=had_mrr_before,
        event_type=row.event_type,
    )
