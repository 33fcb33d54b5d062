"""The ledger's snapshots and classifications are ``NamedTuple``s (cheap to build, issue 12
fifth pass): they must still behave as the frozen dataclasses they replaced did - immutable,
equal and hashed by value, replaceable field by field, picklable to a replay worker and back -
in whichever form (compiled or source) this run loads."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from services.ledger.domain.classifier import BillingEventType, Classification
from services.ledger.domain.normalised import (
    NormalisedEvent,
    SubscriptionItem,
    SubscriptionSnapshot,
)


def _item(quantity: int = 2) -> SubscriptionItem:
    return SubscriptionItem(
        id="si_1",
        price_id="price_1",
        product_id="prod_1",
        plan="pro",
        nickname=None,
        lookup_key="pro",
        unit_amount=1000,
        unit_amount_decimal=None,
        currency="EUR",
        interval="month",
        interval_count=1,
        quantity=quantity,
    )


def _subscription(**overrides: Any) -> SubscriptionSnapshot:
    fields: dict[str, Any] = {
        "id": "sub_1",
        "customer_id": "cus_1",
        "status": "active",
        "currency": "EUR",
        "items": (_item(),),
    }
    fields.update(overrides)
    return SubscriptionSnapshot(**fields)


def _event(**overrides: Any) -> NormalisedEvent:
    fields: dict[str, Any] = {
        "event_id": "evt_1",
        "event_type": "customer.subscription.updated",
        "created": 1_700_000_000,
        "api_version": "2024-06-20",
        "family": "legacy",
        "object_type": "subscription",
        "object_id": "sub_1",
        "customer_id": "cus_1",
        "tenant_id": "t1",
        "livemode": False,
        "subscription": _subscription(),
    }
    fields.update(overrides)
    return NormalisedEvent(**fields)


def _classification() -> Classification:
    return Classification(
        event_type=BillingEventType.SubscriptionUpgraded,
        stripe_event_id="evt_1",
        stripe_event_type="customer.subscription.updated",
        occurred_at=1_700_000_000,
        flags=("x",),
    )


SAMPLES = [_item, _subscription, _event, _classification]
#: A subscription's ``metadata`` (and so an event holding one) is a mapping: not hashable,
#: as with the dataclasses before.
HASHABLE = [_item, _classification]


@pytest.mark.parametrize("make", SAMPLES)
def test_a_field_cannot_be_assigned(make: Any) -> None:
    value = make()
    name = type(value)._fields[0]
    with pytest.raises(AttributeError):
        setattr(value, name, None)
    with pytest.raises(AttributeError):  # no instance dict to grow either
        value.not_a_field = 1


@pytest.mark.parametrize("make", SAMPLES)
def test_equal_by_value(make: Any) -> None:
    assert make() == make()
    assert make() is not make()


@pytest.mark.parametrize("make", HASHABLE)
def test_hashed_by_value(make: Any) -> None:
    assert hash(make()) == hash(make())
    assert len({make(), make()}) == 1


def test_a_snapshot_holding_a_mapping_is_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(_subscription())


def test_different_values_are_not_equal() -> None:
    assert _item(quantity=2) != _item(quantity=3)
    assert _subscription() != _subscription(status="canceled")
    assert _event() != _event(created=1)


@pytest.mark.parametrize("make", SAMPLES)
def test_pickled_and_back_is_the_same_value_of_the_same_class(make: Any) -> None:
    value = make()
    back = pickle.loads(pickle.dumps(value))  # noqa: S301 - our own bytes, as a worker gets them
    assert back == value and type(back) is type(value)


def test_replace_changes_only_the_named_fields() -> None:
    before = _subscription()
    after = before._replace(status="canceled", cancel_at_period_end=True)
    assert (after.status, after.cancel_at_period_end) == ("canceled", True)
    assert before.status == "active" and before.cancel_at_period_end is False  # unchanged
    assert after._replace(status="active", cancel_at_period_end=False) == before
    with pytest.raises(ValueError):
        before._replace(no_such_field=1)  # type: ignore[call-arg]


def test_defaults_are_filled() -> None:
    event = _event()
    assert event.previous_attributes == {} and event.resolution_flags == ()
    assert event.invoice is None and event.previous_subscription is None
    assert _subscription().metadata == {} and _subscription().discounts == ()
    assert _item().tax_rates == () and _item().currency_option_missing is False
