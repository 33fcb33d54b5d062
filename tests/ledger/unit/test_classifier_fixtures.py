"""Every real fixture classifies totally and deterministically; the ones that matter as expected."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ledger.domain.classifier import (
    BillingEventType,
    Classification,
    classify,
    classify_payload,
    is_billing_event,
)
from services.ledger.domain.normalised import NormalisedEvent
from services.ledger.domain.resolvers import UnsupportedApiVersion, resolve
from tests.ledger.unit import builders as b

T = BillingEventType
FILES = b.event_files()


def test_fixture_set_is_present() -> None:
    assert len(FILES) >= 100, f"fixtures not found under {b.events_dir()}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_fixture_classifies_deterministically(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    first = classify_payload(raw)
    second = classify_payload(json.loads(path.read_text(encoding="utf-8")))
    assert first == second
    assert not isinstance(first, UnsupportedApiVersion), "every fixture version is supported"
    if is_billing_event(raw["type"]):
        assert isinstance(first, Classification)
        assert first.event_type in T
        assert first.stripe_event_type == raw["type"]
        assert first.occurred_at == raw["created"]
        if first.currency is not None:
            assert first.currency.isupper() and len(first.currency) == 3
    else:
        assert first is None


EXPECTED: dict[str, BillingEventType | None] = {
    "stripe-ruby-mock/customer.subscription.created__active_api2020-08-27.json": (
        T.SubscriptionCreated
    ),
    "stripe-sync-engine/customer.subscription.created__active_api2020-03-02_mt1X8q.json": (
        T.SubscriptionCreated
    ),
    # template: created event whose object is already canceled -> still one Created row
    "stripe-ruby-mock/customer.subscription.created__canceled_api2018-01-23.json": (
        T.SubscriptionCreated
    ),
    # ended 2021-06-08 10:45, period ran to 2021-07-08: cancelled mid-period
    "stripe-sync-engine/customer.subscription.deleted__canceled_api2020-03-02.json": (
        T.SubscriptionImmediatelyCancelled
    ),
    "stripe-ruby-mock/customer.subscription.deleted__canceled_api2018-01-23.json": (
        T.SubscriptionImmediatelyCancelled
    ),
    "stripe-ruby-mock/customer.subscription.trial_will_end__trialing_api2014-11-05.json": T.NoOp,
    # only the schedule id changed (schedule released): the schedule event carries it
    "stripe-ruby-mock/customer.subscription.updated__active_prev-schedule_api2020-08-27.json": (
        T.NoOp
    ),
    "stripe-sync-engine/invoice.paid__paid_subscription-cycle_api2020-03-02.json": (
        T.SubscriptionRenewed
    ),
    "stripe-ruby-mock/invoice.paid__paid_manual_api2020-08-27.json": T.NoOp,
    "stripe-ruby-mock/invoice.payment_failed__no-status_api2018-01-23.json": T.PaymentFailed,
    "stripe-ruby-mock/invoice.payment_succeeded__no-status_api2018-01-23.json": T.NoOp,
    "stripe-ruby-mock/invoice.created__draft_subscription-create_api2020-08-27.json": T.NoOp,
    "stripe-ruby-mock/charge.refunded__succeeded_fully-refunded_api2018-01-23.json": (
        T.PaymentRefunded
    ),
    "stripe-ruby-mock/charge.refunded__succeeded_fully-refunded_prev-amount-refunded+refunded"
    "+refunds_api2020-08-27.json": T.PaymentRefunded,
    "stripe-sync-engine/refund.created__succeeded_api2020-03-02.json": T.NoOp,
    "stripe-ruby-mock/charge.failed__failed_api2020-08-27.json": T.NoOp,
    "stripe-ruby-mock/customer.updated__prev-currency_api2020-08-27.json": T.NoOp,
    "stripe-ruby-mock/customer.updated__prev-description_api2018-01-23.json": T.NoOp,
    "stripe-ruby-mock/payment_method.attached__api2020-08-27.json": T.PaymentMethodUpdated,
    "dj-stripe/payment_method.attached__api2019-08-14.json": T.PaymentMethodUpdated,
    "stripe-sync-engine/payment_method.attached__api2020-03-02.json": T.PaymentMethodUpdated,
    "stripe-sync-engine/payment_method.updated__prev-card_api2020-03-02.json": (
        T.PaymentMethodUpdated
    ),
    "stripe-sync-engine/payment_method.automatically_updated__prev-card_api2020-03-02.json": (
        T.PaymentMethodUpdated
    ),
    "stripe-sync-engine/payment_method.detached__prev-customer_api2020-03-02.json": T.NoOp,
    "dj-stripe/customer.created__api2016-03-07.json": T.NoOp,
    "stripe-ruby-mock/customer.deleted__api2020-08-27.json": T.NoOp,
    # scheduled *upgrade* (quantity 1 -> 2): nothing to record until it takes effect
    "stripe-ruby-mock/subscription_schedule.created__active_api2020-08-27.json": T.NoOp,
    "stripe-ruby-mock/subscription_schedule.released__released_api2020-08-27.json": T.NoOp,
    "stripe-sync-engine/subscription_schedule.canceled__released_api2020-03-02.json": T.NoOp,
    "stripe-sync-engine/invoice_payment.paid__paid_api2023-10-16.json": T.NoOp,
    "stripe-sync-engine/credit_note.created__issued_prev-custom-fields_api2020-03-02.json": T.NoOp,
    "stripe-sync-engine/checkout.session.completed__complete_api2020-03-02.json": T.NoOp,
    "stripe-ruby-mock/charge.dispute.created__warning-needs-response_api2020-08-27.json": T.NoOp,
    # not billing: catalogue events
    "stripe-ruby-mock/product.created__api2020-08-27.json": None,
    "stripe-ruby-mock/plan.created__api2020-08-27.json": None,
    "dj-stripe/price.updated__prev-unit-amount+unit-amount-decimal_api2020-03-02.json": None,
    "stripe-sync-engine/coupon.created__api2023-10-16.json": None,
    "stripe-sync-engine/promotion_code.created__api2023-10-16.json": None,
}


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_expected_fixture_classification(relative: str) -> None:
    expected = EXPECTED[relative]
    if not (b.events_dir() / relative).exists():
        pytest.skip(f"{relative} not in {b.events_dir()}")
    result = classify_payload(b.load_event(relative))
    assert not isinstance(result, UnsupportedApiVersion)
    got = result.event_type if result is not None else None
    assert got == expected


def test_refund_amount_from_previous_attributes() -> None:
    raw = b.load_event(
        "stripe-ruby-mock/charge.refunded__succeeded_fully-refunded_prev-amount-refunded"
        "+refunded+refunds_api2020-08-27.json"
    )
    result = classify_payload(raw)
    assert isinstance(result, Classification)
    assert result.refund_amount == 100 and result.currency == "USD"
    assert "full_refund" in result.flags


def test_created_fixture_carries_mrr_and_plan() -> None:
    raw = b.load_event("stripe-ruby-mock/customer.subscription.created__active_api2020-08-27.json")
    result = classify_payload(raw)
    assert isinstance(result, Classification)
    assert result.subscription_id == "sub_000000000000000000000000"
    assert result.committed_mrr_after == 1500 and result.forward_mrr_after == 1500
    assert result.to_plan == "price_000000000000000000000000"
    assert result.currency == "USD"


def test_every_fixture_under_a_foreign_version_is_unsupported_not_a_crash() -> None:
    for path in FILES:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["api_version"] = "2026-01-01.zinnia"  # unknown release, older than the newest
        result = resolve(raw)
        assert isinstance(result, UnsupportedApiVersion)


def test_every_fixture_under_the_basil_resolver_stays_total() -> None:
    # the envelope version does not always match the object's shape: force the other resolver
    for path in FILES:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["api_version"] = b.BASIL
        ev = resolve(raw)
        assert isinstance(ev, NormalisedEvent)
        assert classify(ev) == classify(ev)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(
    [
        "status", "items", "plan", "quantity", "discount", "discounts", "cancel_at_period_end",
        "cancel_at", "pause_collection", "pending_update", "schedule", "phases", "customer",
        "amount_refunded", "refunds", "attempt_count", "billing_reason", "address",
        "invoice_settings", "current_period_end", "ended_at", "parent", "lines", "currency",
    ]
)  # fmt: skip
_objects = st.sampled_from(
    ["subscription", "invoice", "charge", "refund", "credit_note", "customer",
     "payment_method", "invoice_payment", "subscription_schedule", "tax_id", None]
)  # fmt: skip
_types = st.sampled_from(
    ["customer.subscription.created", "customer.subscription.updated",
     "customer.subscription.deleted", "customer.subscription.paused", "invoice.paid",
     "invoice.payment_failed", "charge.refunded", "refund.created", "credit_note.created",
     "customer.updated", "customer.tax_id.created", "payment_method.attached",
     "subscription_schedule.created", "subscription_schedule.updated",
     "subscription_schedule.released", "product.created"]
)  # fmt: skip


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    _types,
    _objects,
    st.dictionaries(_keys, _json, max_size=6),
    st.dictionaries(_keys, _json, max_size=4),
    st.sampled_from([b.BASIL, b.LEGACY, "2025-06-30.basil", "2016-03-07; orders_beta=v3"]),
)
def test_classify_is_total_on_arbitrary_payloads(
    event_type: str,
    object_type: str | None,
    obj: dict[str, object],
    previous: dict[str, object],
    version: str,
) -> None:
    raw = {
        "id": "evt_x",
        "type": event_type,
        "api_version": version,
        "created": 1_700_000_000,
        "data": {"object": {**obj, "object": object_type}, "previous_attributes": previous},
    }
    first = classify_payload(raw)
    assert first == classify_payload(copy.deepcopy(raw))
    assert first is None or isinstance(first, Classification)
