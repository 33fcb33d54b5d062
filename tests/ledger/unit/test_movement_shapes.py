"""The dashboard classifies MRR movements by shape: the rule must depend on nothing else.

``query_mrr_moves_daily`` (migration 0012) keeps, per day, the count and summed change of the
steps of each shape (signs before and after, rising, had MRR before, reactivation type), and
the dashboard classifies one representative pair per shape with ``mrr_movement``. That is
only right while the rule's category is a function of the shape; if the rule ever looks at
magnitudes (a threshold, say), this test fails before a dashboard is wrong.
"""

from __future__ import annotations

import itertools

from services.ledger.domain.classifier import BillingEventType
from services.ledger.domain.movements import mrr_movement
from services.ledger.queries.dashboard import shape_representative

AMOUNTS = (-5000, -7, -1, 0, 1, 2, 9, 10, 11, 499, 500, 501, 120_000)


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def test_every_step_classifies_like_its_shape_representative() -> None:
    checked = 0
    for before, after, had, reactivated in itertools.product(
        AMOUNTS, AMOUNTS, (False, True), (False, True)
    ):
        if before == after:
            continue  # no movement: such steps are not in the daily shapes
        event_type = BillingEventType.SubscriptionReactivated if reactivated else None
        step = mrr_movement(before, after, had_mrr_before=had, event_type=event_type)
        rep_before, rep_after = shape_representative(_sign(before), _sign(after), after > before)
        assert (_sign(rep_before), _sign(rep_after), rep_after > rep_before) == (
            _sign(before),
            _sign(after),
            after > before,
        )
        shape = mrr_movement(rep_before, rep_after, had_mrr_before=had, event_type=event_type)
        assert (step.category if step else None) == (shape.category if shape else None), (
            before,
            after,
            had,
            reactivated,
        )
        assert step is None or step.amount == after - before  # the amount is the summed change
        checked += 1
    assert checked > 500
