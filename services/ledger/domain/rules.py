"""The ledger's small shared rules, each in one place (issue 6, "one home for each rule").

Every rule here that SQL needs too has exactly one SQL twin, defined in
``migrations/sql/ledger_functions.sql``; ``tests/ledger/integration/test_rule_homes.py``
evaluates both on the same inputs and requires equal answers, so they cannot drift apart.
Python code uses these functions; SQL (PL/pgSQL bodies, query modules) calls the twins.

=====================  =============================================  =====================
rule                   Python                                         SQL
=====================  =============================================  =====================
ended subscription     ``ENDED_STATUSES``, ``is_ended``               ``ledger.is_ended``
cancelling             ``is_cancelling_at``                           ``ledger.is_cancelling``
account identity       ``ACCOUNT_PRECEDENCE``, ``account_id``         ``ledger.account_id``
money rounding         ``money.round_half_even``                      ``ledger.round_half_even``
plan name              ``plan_name``, ``phase_plan_name``             (Python only)
=====================  =============================================  =====================
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from services.ledger.domain.normalised import SchedulePhase, SubscriptionItem

__all__ = [
    "ACCOUNT_PRECEDENCE",
    "ENDED_STATUSES",
    "account_id",
    "is_cancelling_at",
    "is_ended",
    "phase_plan_name",
    "plan_name",
]

#: Subscription statuses after which nothing more is billed (Stripe never leaves them).
ENDED_STATUSES: frozenset[str] = frozenset({"canceled", "incomplete_expired"})

#: Where an event's or a customer's account (tenant) comes from, first non-empty wins:
#: an explicit link (``ledger.customer_links``: an operator or the host application said so,
#: and it overrides metadata that is missing or wrong), then the event payload's tenant
#: (``metadata.tenant_id`` of the object or its expanded customer), then the customer's own
#: ``metadata.tenant_id`` (``ledger.accounts.tenant_id``), then the Stripe customer id itself
#: (an account of one customer, not yet linked to a tenant).
ACCOUNT_PRECEDENCE: tuple[str, ...] = ("link", "payload_tenant", "customer_tenant", "customer")

T = TypeVar("T")


def is_ended(status: str | None, ended_at: object | None) -> bool:
    """Ended: an ended status, or an ``ended_at``. Committed and forward MRR are 0."""
    return status in ENDED_STATUSES or ended_at is not None


def is_cancelling_at(
    cancel_at_period_end: bool | None, cancel_at: T | None, period_end: T | None
) -> bool:
    """Cancelling: set to end at period end, or ``cancel_at`` at or before the current period
    end (or with no known period end). Forward MRR is 0 and there is no renewal."""
    if cancel_at_period_end:
        return True
    if cancel_at is None:
        return False
    return period_end is None or cancel_at <= period_end  # type: ignore[operator]


def account_id(
    link: str | None,
    payload_tenant: str | None,
    customer_tenant: str | None,
    customer: str | None,
) -> str | None:
    """The account by ``ACCOUNT_PRECEDENCE``: the first source that is not ``None`` (like SQL's
    ``COALESCE``; resolvers never produce empty ids); ``None`` when nothing is known."""
    for candidate in (link, payload_tenant, customer_tenant, customer):
        if candidate is not None:
            return candidate
    return None


def plan_name(items: Iterable[SubscriptionItem]) -> str | None:
    """A subscription's plan: its licensed items' names (``lookup_key``, else nickname, else
    the legacy plan name, else the price id) joined with ``+``; metered items are usage, not
    the plan."""
    names = [i.plan for i in items if i.plan is not None and i.usage_type != "metered"]
    return "+".join(names) if names else None


def phase_plan_name(phase: SchedulePhase | None) -> str | None:
    """A schedule phase's plan: the same names where the prices are expanded, else the price
    ids (``?`` for an item with neither)."""
    if phase is None:
        return None
    names = [
        (i.price.plan if i.price is not None else None) or i.price_id or "?" for i in phase.items
    ]
    return "+".join(names) if names else None
