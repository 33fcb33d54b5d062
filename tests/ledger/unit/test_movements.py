from __future__ import annotations

import pytest

from services.ledger.domain.classifier import BillingEventType, Classification
from services.ledger.domain.movements import (
    MrrMovementCategory,
    movement_for_row,
    mrr_movement,
)

M = MrrMovementCategory


@pytest.mark.parametrize(
    ("before", "after", "had", "expected", "amount"),
    [
        (0, 2000, False, M.NEW, 2000),
        (None, 2000, False, M.NEW, 2000),
        (0, 2000, True, M.REACTIVATION, 2000),
        (2000, 5000, True, M.EXPANSION, 3000),
        (5000, 800, True, M.CONTRACTION, -4200),
        (5000, 0, True, M.CHURN, -5000),
    ],
)
def test_mrr_movement(
    before: int | None, after: int, had: bool, expected: MrrMovementCategory, amount: int
) -> None:
    movement = mrr_movement(before, after, had_mrr_before=had)
    assert movement is not None
    assert (movement.category, movement.amount) == (expected, amount)


def test_no_change_no_movement() -> None:
    assert mrr_movement(2000, 2000) is None
    assert mrr_movement(0, 0) is None


def test_reactivated_row_from_zero_is_reactivation() -> None:
    row = Classification(
        event_type=BillingEventType.SubscriptionReactivated,
        stripe_event_id="evt",
        stripe_event_type="customer.subscription.updated",
        occurred_at=1,
        committed_mrr_after=3000,
    )
    movement = movement_for_row(row, 0)
    assert movement is not None and movement.category is M.REACTIVATION


def test_row_without_subscription_state_carries_mrr() -> None:
    row = Classification(
        event_type=BillingEventType.PaymentRefunded,
        stripe_event_id="evt",
        stripe_event_type="charge.refunded",
        occurred_at=1,
        committed_mrr_after=None,
    )
    assert movement_for_row(row, 5000) is None
