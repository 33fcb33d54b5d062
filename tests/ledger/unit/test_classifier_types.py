"""One test (at least) per ledger event type: from a real fixture where one exists, else from
payloads built from the shared Stripe object shapes (tests/ledger/unit/builders.py).

Every test runs once per post-basil API version family (basil, clover, dahlia, endive): the
built payloads (Stripe's current object shapes) go out under each family's version, so all 20
types are checked in every family. Payloads built in the legacy shape keep their version."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.ledger.domain.classifier import BillingEventType, Classification, classify_payload
from services.ledger.domain.resolvers import UnsupportedApiVersion
from tests.ledger.unit import builders as b

T = BillingEventType

#: Post-basil families the builder payloads are sent under (issue 7).
FAMILY_VERSIONS = [b.BASIL, "2025-09-30.clover", "2026-05-27.dahlia", "2026-10-28.endive"]


@pytest.fixture(autouse=True, params=FAMILY_VERSIONS)
def family_version(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Send every basil-shaped built event under ``request.param`` instead."""
    version: str = request.param
    build = b.event

    def event(*args: Any, **kwargs: Any) -> dict[str, Any]:
        if kwargs.get("api_version", b.BASIL) == b.BASIL:
            kwargs["api_version"] = version
        return build(*args, **kwargs)

    monkeypatch.setattr(b, "event", event)
    return version

BASIC = b.price(2000, price_id="price_basic", nickname="Basic")
PRO = b.price(5000, price_id="price_pro", nickname="Pro")
SMALL = b.price(800, price_id="price_small", nickname="Small")


def run(raw: dict[str, Any]) -> Classification:
    result = classify_payload(raw)
    assert isinstance(result, Classification), result
    assert classify_payload(copy.deepcopy(raw)) == result
    return result


def updated(obj: dict[str, Any], previous: dict[str, Any], **kw: Any) -> Classification:
    return run(b.event("customer.subscription.updated", obj, previous, **kw))


def test_vocabulary_is_exactly_the_20_types() -> None:
    assert [t.value for t in BillingEventType] == [
        "SubscriptionCreated",
        "SubscriptionRenewed",
        "SubscriptionUpgraded",
        "SubscriptionDowngradeScheduled",
        "SubscriptionDowngradeCancelled",
        "SubscriptionDowngraded",
        "SubscriptionCancelled",
        "SubscriptionReactivated",
        "SubscriptionExpired",
        "SubscriptionImmediatelyCancelled",
        "SubscriptionSuspended",
        "SubscriptionPastDue",
        "PaymentFailed",
        "PaymentRecovered",
        "PaymentRefunded",
        "BillingInfoAdded",
        "BillingInfoUpdated",
        "PaymentMethodUpdated",
        "NoOp",
        "Unclassified",
    ]


# ----------------------------------------------------------------- SubscriptionCreated
def test_subscription_created_real_fixture() -> None:
    raw = b.load_event("stripe-ruby-mock/customer.subscription.created__active_api2020-08-27.json")
    row = run(raw)
    assert row.event_type is T.SubscriptionCreated
    assert (row.previous_amount, row.new_amount, row.amount_delta) == (0, 1500, 1500)


def test_subscription_created_basil_trial() -> None:
    sub = b.subscription([b.item(PRO)], status="trialing", trial_end=b.T0 + 14 * 86_400)
    row = run(b.event("customer.subscription.created", sub))
    assert row.event_type is T.SubscriptionCreated
    assert (row.committed_mrr_after, row.forward_mrr_after, row.to_plan) == (0, 5000, "Pro")


# ----------------------------------------------------------------- SubscriptionRenewed
def test_subscription_renewed_real_fixture() -> None:
    raw = b.load_event(
        "stripe-sync-engine/invoice.paid__paid_subscription-cycle_api2020-03-02.json"
    )
    row = run(raw)
    assert row.event_type is T.SubscriptionRenewed
    assert row.subscription_id == "sub_JsuPyCPhXWfZar"
    assert row.committed_mrr_after is None  # the ledger carries the subscription's MRR


@pytest.mark.parametrize("basil", [True, False])
def test_renewal_burst_yields_exactly_one_renewed(basil: bool) -> None:
    version = b.BASIL if basil else b.LEGACY
    old_period = (b.T0 - b.MONTH, b.T0)
    new_period = (b.T0, b.T0 + b.MONTH)
    after = b.subscription(
        [b.item(BASIC, basil=basil, period=new_period)],
        basil=basil,
        period=new_period,
        latest_invoice="in_new",
    )
    if basil:
        previous: dict[str, Any] = {
            "items": {"object": "list", "data": [b.item(BASIC, basil=True, period=old_period)]},
            "latest_invoice": "in_prev",
        }
    else:
        previous = {
            "current_period_start": old_period[0],
            "current_period_end": old_period[1],
            "latest_invoice": "in_prev",
        }
    inv_draft = b.invoice(basil=basil, status="draft", amount_paid=0, attempt_count=0)
    inv_paid = b.invoice(basil=basil)
    charge = b.stripe_object("charge", basil=basil)
    pi = b.stripe_object("payment_intent", basil=basil)
    burst = [
        b.event("customer.subscription.updated", after, previous, api_version=version),
        b.event("invoice.created", inv_draft, api_version=version),
        b.event("invoice.finalized", inv_draft, api_version=version),
        b.event("charge.succeeded", charge, api_version=version),
        b.event("payment_intent.succeeded", pi, api_version=version),
        b.event("invoice.payment_succeeded", inv_paid, api_version=version),
        b.event("invoice.paid", inv_paid, api_version=version),
    ]
    types = [run(e).event_type for e in burst]
    assert types.count(T.SubscriptionRenewed) == 1
    assert all(t in (T.SubscriptionRenewed, T.NoOp) for t in types)
    if basil:
        ip = b.stripe_object("invoice_payment")
        assert run(b.event("invoice_payment.paid", ip)).event_type is T.NoOp


# ----------------------------------------------------------------- Upgraded / Downgraded
@pytest.mark.parametrize("basil", [True, False])
def test_subscription_upgraded_by_price(basil: bool) -> None:
    after = b.subscription([b.item(PRO, basil=basil)], basil=basil)
    prev_items = {"object": "list", "data": [b.item(BASIC, basil=basil)]}
    row = updated(after, {"items": prev_items}, api_version=b.BASIL if basil else b.LEGACY)
    assert row.event_type is T.SubscriptionUpgraded
    assert (row.from_plan, row.to_plan) == ("Basic", "Pro")
    assert (row.previous_amount, row.new_amount, row.amount_delta) == (2000, 5000, 3000)
    assert row.committed_mrr_after == 5000


def test_subscription_upgraded_by_quantity() -> None:
    after = b.subscription([b.item(BASIC, quantity=3)])
    row = updated(after, {"items": {"object": "list", "data": [b.item(BASIC, quantity=1)]}})
    assert row.event_type is T.SubscriptionUpgraded and row.amount_delta == 4000


def test_subscription_downgraded_now() -> None:
    after = b.subscription([b.item(SMALL)])
    row = updated(after, {"items": {"object": "list", "data": [b.item(PRO)]}})
    assert row.event_type is T.SubscriptionDowngraded
    assert (row.from_plan, row.to_plan, row.amount_delta) == ("Pro", "Small", -4200)


def test_same_mrr_plan_switch_is_noop() -> None:
    yearly = b.price(24_000, price_id="price_basic_year", interval="year")
    after = b.subscription([b.item(yearly)])
    row = updated(after, {"items": {"object": "list", "data": [b.item(BASIC)]}})
    assert row.event_type is T.NoOp and "plan_changed_same_mrr" in row.flags


# ----------------------------------------------------------------- DowngradeScheduled
def _schedule_phases(next_price: Any, qty: int = 1) -> list[Any]:
    return [
        (b.T0 - 100, b.T0 + 100, [(PRO, 1)]),
        (b.T0 + 100, b.T0 + b.MONTH, [(next_price, qty)]),
    ]


def test_downgrade_scheduled_by_schedule_with_cheaper_next_phase() -> None:
    row = run(b.event("subscription_schedule.created", b.schedule(_schedule_phases(SMALL))))
    assert row.event_type is T.SubscriptionDowngradeScheduled
    assert (row.previous_amount, row.new_amount, row.forward_mrr_after) == (5000, 800, 800)
    assert (row.from_plan, row.to_plan) == ("Pro", "Small")
    assert row.subscription_id == "sub_test"


def test_schedule_of_unexpanded_prices_with_unknown_direction_is_neutral() -> None:
    """Issue 6.2: an unknown direction (a ramp or intro price is as likely) is never a
    scheduled downgrade: a NoOp row flagged, without a forward MRR."""
    row = run(
        b.event(
            "subscription_schedule.created",
            b.schedule(
                [
                    (b.T0 - 100, b.T0 + 100, [("price_pro", 1)]),
                    (b.T0 + 100, b.T0 + 900, [("price_small", 1)]),
                ]
            ),
        )
    )
    assert row.event_type is T.NoOp
    assert "schedule_direction_unknown" in row.flags
    assert row.forward_mrr_after is None


def test_schedule_with_lower_quantity_of_same_price_is_downgrade() -> None:
    row = run(
        b.event(
            "subscription_schedule.created",
            b.schedule(
                [
                    (b.T0 - 100, b.T0 + 100, [("price_pro", 5)]),
                    (b.T0 + 100, b.T0 + 900, [("price_pro", 2)]),
                ]
            ),
        )
    )
    assert row.event_type is T.SubscriptionDowngradeScheduled
    assert "schedule_direction_inferred" not in row.flags


def test_downgrade_scheduled_by_pending_update() -> None:
    pending = {"subscription_items": [b.item(SMALL)], "expires_at": b.T0 + 100, "trial_end": None}
    after = b.subscription([b.item(PRO)], pending_update=pending)
    row = updated(after, {"pending_update": None})
    assert row.event_type is T.SubscriptionDowngradeScheduled
    assert (row.previous_amount, row.new_amount) == (5000, 800)
    assert (row.committed_mrr_after, row.forward_mrr_after) == (5000, 800)


# ----------------------------------------------------------------- DowngradeCancelled
def test_downgrade_cancelled_by_schedule_release() -> None:
    sched = b.schedule(
        _schedule_phases(SMALL),
        status="released",
        released_at=b.T0,
        released_subscription="sub_test",
        subscription=None,
        current_phase=None,
    )
    row = run(b.event("subscription_schedule.released", sched))
    assert row.event_type is T.SubscriptionDowngradeCancelled
    assert row.subscription_id == "sub_test"
    assert row.forward_mrr_after == 5000


def test_downgrade_cancelled_by_pending_update_cleared() -> None:
    pending = {"subscription_items": [b.item(SMALL)], "expires_at": b.T0 + 100, "trial_end": None}
    after = b.subscription([b.item(PRO)])
    row = updated(after, {"pending_update": pending})
    assert row.event_type is T.SubscriptionDowngradeCancelled


def test_schedule_updated_dropping_the_cheaper_phase_cancels_downgrade() -> None:
    now = b.schedule(_schedule_phases(PRO))
    before = b.schedule(_schedule_phases(SMALL))
    row = run(b.event("subscription_schedule.updated", now, {"phases": before["phases"]}))
    assert row.event_type is T.SubscriptionDowngradeCancelled


def test_schedule_released_after_last_phase_is_noop() -> None:
    sched = b.schedule(
        _schedule_phases(SMALL), status="released", released_at=b.T0 + b.MONTH, current_phase=None
    )
    assert run(b.event("subscription_schedule.released", sched)).event_type is T.NoOp


# ----------------------------------------------------------------- Cancelled / Reactivated
def test_subscription_cancelled_at_period_end() -> None:
    after = b.subscription(
        [b.item(PRO)],
        cancel_at_period_end=True,
        canceled_at=b.T0,
        cancellation_details={
            "reason": "cancellation_requested",
            "feedback": "too_expensive",
            "comment": None,
        },
    )
    row = updated(after, {"cancel_at_period_end": False, "canceled_at": None})
    assert row.event_type is T.SubscriptionCancelled
    assert (row.committed_mrr_after, row.forward_mrr_after) == (5000, 0)
    assert row.reason == "cancellation_requested"


def test_subscription_reactivated() -> None:
    after = b.subscription([b.item(PRO)])
    row = updated(after, {"cancel_at_period_end": True, "canceled_at": b.T0 - 50})
    assert row.event_type is T.SubscriptionReactivated
    assert row.forward_mrr_after == 5000


# ----------------------------------------------------------------- Expired / ImmediatelyCancelled
def test_subscription_expired_at_period_end() -> None:
    period = (b.T0 - b.MONTH, b.T0)
    sub = b.subscription(
        [b.item(PRO, period=period)],
        period=period,
        status="canceled",
        cancel_at_period_end=True,
        canceled_at=b.T0 - 10 * 86_400,
        ended_at=b.T0,
    )
    row = run(b.event("customer.subscription.deleted", sub))
    assert row.event_type is T.SubscriptionExpired
    assert (row.previous_amount, row.committed_mrr_after, row.amount_delta) == (5000, 0, -5000)
    assert row.from_plan == "Pro"


def test_subscription_immediately_cancelled_real_fixture() -> None:
    raw = b.load_event(
        "stripe-sync-engine/customer.subscription.deleted__canceled_api2020-03-02.json"
    )
    row = run(raw)
    assert row.event_type is T.SubscriptionImmediatelyCancelled
    assert (row.committed_mrr_after, row.forward_mrr_after) == (0, 0)


def test_dunning_cancellation_is_immediate_even_at_period_end() -> None:
    period = (b.T0 - b.MONTH, b.T0)
    sub = b.subscription(
        [b.item(PRO, period=period)],
        period=period,
        status="canceled",
        canceled_at=b.T0,
        ended_at=b.T0,
        cancellation_details={"reason": "payment_failed", "feedback": None, "comment": None},
    )
    row = run(b.event("customer.subscription.deleted", sub))
    assert row.event_type is T.SubscriptionImmediatelyCancelled
    assert row.reason == "payment_failed"


# ----------------------------------------------------------------- Suspended / PastDue
def test_subscription_suspended_by_pause_collection() -> None:
    after = b.subscription([b.item(PRO)], pause_collection={"behavior": "void", "resumes_at": None})
    row = updated(after, {"pause_collection": None})
    assert row.event_type is T.SubscriptionSuspended
    assert row.reason == "void" and row.committed_mrr_after == 0


def test_subscription_suspended_by_paused_event() -> None:
    sub = b.subscription([b.item(PRO)], status="paused")
    row = run(b.event("customer.subscription.paused", sub))
    assert row.event_type is T.SubscriptionSuspended and row.committed_mrr_after == 0


def test_resume_is_reactivated() -> None:
    after = b.subscription([b.item(PRO)])
    row = updated(after, {"pause_collection": {"behavior": "void", "resumes_at": None}})
    assert row.event_type is T.SubscriptionReactivated and "resumed" in row.flags
    assert row.amount_delta == 5000


def test_subscription_past_due() -> None:
    after = b.subscription([b.item(PRO)], status="past_due", latest_invoice="in_new")
    row = updated(after, {"status": "active", "latest_invoice": "in_prev"})
    assert row.event_type is T.SubscriptionPastDue
    assert row.reason == "past_due" and row.committed_mrr_after == 5000


# ----------------------------------------------------------------- payments
def test_payment_failed_real_fixture() -> None:
    raw = b.load_event("stripe-ruby-mock/invoice.payment_failed__no-status_api2018-01-23.json")
    row = run(raw)
    assert row.event_type is T.PaymentFailed
    assert row.subscription_id == "sub_00000000000000" and row.currency == "USD"


def test_payment_failed_basil() -> None:
    inv = b.invoice(status="open", amount_paid=0, amount_remaining=2000, attempt_count=1)
    row = run(b.event("invoice.payment_failed", inv))
    assert row.event_type is T.PaymentFailed
    assert (row.subscription_id, row.new_amount) == ("sub_test", 2000)


def test_payment_recovered_after_failed_attempts() -> None:
    raw = b.load_event(
        "stripe-sync-engine/invoice.paid__paid_subscription-cycle_api2020-03-02.json"
    )
    raw["data"]["object"]["attempt_count"] = 3
    row = run(raw)
    assert row.event_type is T.PaymentRecovered
    basil = run(b.event("invoice.paid", b.invoice(attempt_count=2)))
    assert basil.event_type is T.PaymentRecovered and basil.new_amount == 2000


def test_payment_recovered_from_uncollectible() -> None:
    row = run(
        b.event("invoice.paid", b.invoice(billing_reason="manual"), {"status": "uncollectible"})
    )
    assert row.event_type is T.PaymentRecovered


def test_payment_refunded_real_fixture_full() -> None:
    raw = b.load_event(
        "stripe-ruby-mock/charge.refunded__succeeded_fully-refunded_api2018-01-23.json"
    )
    row = run(raw)
    assert row.event_type is T.PaymentRefunded
    assert row.refund_amount == 100 and "full_refund" in row.flags


def test_payment_refunded_partial_and_several_refunds() -> None:
    charge = b.stripe_object("charge")
    first = b.stripe_object("refund")
    first.update(id="re_1", amount=300, created=b.T0 - 100)
    second = b.stripe_object("refund")
    second.update(id="re_2", amount=200, created=b.T0)
    charge.update(
        amount=1000,
        amount_refunded=500,
        refunded=False,
        currency="eur",
        refunds={"object": "list", "data": [second, first]},
    )
    with_prev = run(
        b.event("charge.refunded", charge, {"amount_refunded": 300, "refunds": {"data": [first]}})
    )
    assert with_prev.event_type is T.PaymentRefunded
    assert with_prev.refund_amount == 200 and "partial_refund" in with_prev.flags
    assert with_prev.currency == "EUR"
    without_prev = run(b.event("charge.refunded", charge))
    assert without_prev.refund_amount == 200  # the newest refund on the charge


def test_refund_created_is_noop_because_charge_refunded_records_it() -> None:
    raw = b.load_event("stripe-sync-engine/refund.created__succeeded_api2020-03-02.json")
    assert run(raw).event_type is T.NoOp


def test_post_payment_credit_note_without_refund_is_refunded() -> None:
    note = b.stripe_object("credit_note")
    note.update(
        type="post_payment",
        post_payment_amount=700,
        pre_payment_amount=0,
        total=700,
        refunds=[],
        currency="usd",
    )
    row = run(b.event("credit_note.created", note))
    assert row.event_type is T.PaymentRefunded and row.refund_amount == 700
    note["refunds"] = [{"refund": "re_1", "amount_refunded": 700}]
    assert run(b.event("credit_note.created", note)).event_type is T.NoOp


# ----------------------------------------------------------------- billing info / payment method
def _customer(**fields: Any) -> dict[str, Any]:
    cust = b.stripe_object("customer")
    cust.update(fields)
    return cust


def test_billing_info_added() -> None:
    address = {
        "city": "Paris",
        "country": "FR",
        "line1": "1 rue",
        "line2": None,
        "postal_code": "75001",
        "state": None,
    }
    empty = dict.fromkeys(address)
    row = run(b.event("customer.updated", _customer(address=address), {"address": empty}))
    assert row.event_type is T.BillingInfoAdded
    row2 = run(b.event("customer.updated", _customer(address=address), {"address": None}))
    assert row2.event_type is T.BillingInfoAdded
    tax = b.event(
        "customer.tax_id.created",
        {"object": "tax_id", "id": "txi_1", "customer": "cus_test", "value": "FR123"},
    )
    assert run(tax).event_type is T.BillingInfoAdded


def test_billing_info_updated() -> None:
    new = {
        "city": "Lyon",
        "country": "FR",
        "line1": "2 rue",
        "line2": None,
        "postal_code": "69001",
        "state": None,
    }
    old = dict(new, city="Paris", postal_code="75001")
    row = run(
        b.event(
            "customer.updated",
            _customer(address=new),
            {"address": {"city": "Paris", "postal_code": "75001"}},
        )
    )
    assert row.event_type is T.BillingInfoUpdated
    both = run(
        b.event(
            "customer.updated",
            _customer(address=new, email="a@b.c"),
            {"address": old, "email": None},
        )
    )
    assert both.event_type is T.BillingInfoUpdated
    tax = b.event(
        "customer.tax_id.updated", {"object": "tax_id", "id": "txi_1", "customer": "cus_test"}
    )
    assert run(tax).event_type is T.BillingInfoUpdated


def test_payment_method_updated_real_fixture() -> None:
    raw = b.load_event("stripe-ruby-mock/payment_method.attached__api2020-08-27.json")
    row = run(raw)
    assert row.event_type is T.PaymentMethodUpdated and row.customer_id == "cus_00000000000000"


def test_payment_method_updated_by_customer_default() -> None:
    cust = _customer()
    cust["invoice_settings"]["default_payment_method"] = "pm_new"
    row = run(
        b.event(
            "customer.updated", cust, {"invoice_settings": {"default_payment_method": "pm_old"}}
        )
    )
    assert row.event_type is T.PaymentMethodUpdated


# ----------------------------------------------------------------- NoOp / Unclassified
def test_noop_real_fixture() -> None:
    raw = b.load_event("stripe-ruby-mock/customer.updated__prev-currency_api2020-08-27.json")
    assert run(raw).event_type is T.NoOp


def test_noop_for_metadata_only_subscription_update() -> None:
    after = b.subscription([b.item(PRO)], metadata={"x": "1"})
    row = updated(after, {"metadata": {"x": None}})
    assert row.event_type is T.NoOp and row.committed_mrr_after == 5000


def test_unclassified_price_change_and_cancel_flip_together() -> None:
    after = b.subscription([b.item(PRO)], cancel_at_period_end=True)
    row = updated(
        after, {"items": {"object": "list", "data": [b.item(BASIC)]}, "cancel_at_period_end": False}
    )
    assert row.event_type is T.Unclassified
    assert "component:SubscriptionUpgraded" in row.flags
    assert "component:SubscriptionCancelled" in row.flags
    assert row.committed_mrr_after == 5000 and row.forward_mrr_after == 0


def test_object_type_mismatch_template_is_noop_not_crash() -> None:
    raw = b.event("customer.subscription.updated", b.invoice(), {"status": "open"})
    assert run(raw).event_type is T.NoOp


def test_non_billing_is_none_and_unknown_version_is_typed() -> None:
    assert classify_payload(b.event("product.created", b.stripe_object("product"))) is None
    from services.ledger.domain.resolvers import UnsupportedApiVersion

    raw = b.event(
        "customer.subscription.created", b.subscription(), api_version="2026-01-01.zinnia"
    )
    assert isinstance(classify_payload(raw), UnsupportedApiVersion)


def test_built_events_go_out_in_each_family(family_version: str) -> None:
    from services.ledger.domain.resolvers import resolve

    raw = b.event("customer.subscription.created", b.subscription([b.item(PRO)]))
    assert raw["api_version"] == family_version
    resolved = resolve(raw)
    assert not isinstance(resolved, UnsupportedApiVersion)
    assert resolved.family == family_version.split(".")[1]
    assert run(raw).committed_mrr_after == 5000
