from __future__ import annotations

import pytest

from services.ledger.domain.normalised import NormalisedEvent
from services.ledger.domain.resolvers import (
    DEFAULT_REGISTRY,
    UnsupportedApiVersion,
    parse_api_version,
    resolve,
)
from tests.ledger.unit import builders as b


@pytest.mark.parametrize(
    ("version", "family"),
    [
        ("2014-11-05", "legacy"),
        ("2016-03-07; orders_beta=v3", "legacy"),
        ("2020-08-27", "legacy"),
        ("2024-09-30.acacia", "legacy"),
        ("2025-02-24.acacia", "legacy"),
        ("2025-03-31.basil", "basil"),
        ("2025-08-27.basil", "basil"),
        ("2025-09-30.clover", "clover"),
        ("2026-02-25.clover", "clover"),
        ("2026-03-25.dahlia", "dahlia"),
        ("2026-05-27.dahlia", "dahlia"),
        ("2026-08-26.dahlia", "dahlia"),
        ("2026-09-30.endive", "endive"),
        ("2026-10-28.endive", "endive"),
        ("2026-11-18.endive", "endive"),
    ],
)
def test_resolver_selected_by_version(version: str, family: str) -> None:
    resolver = DEFAULT_REGISTRY.resolver_for(version)
    assert resolver is not None and resolver.family == family
    result = resolve(
        b.event("customer.subscription.created", b.subscription(), api_version=version)
    )
    assert isinstance(result, NormalisedEvent)
    assert result.family == family
    assert result.api_version == version


@pytest.mark.parametrize(
    "version",
    [
        "garbage",
        "",
        None,
        42,
        "2025-04-30",  # undotted but on/after basil: no such Stripe version
        "2024-01-01.basil",  # basil name before basil existed
        "2025-06-30.clover",  # clover name before clover existed
        "2026-01-28.dahlia",  # dahlia name before dahlia existed
        "2026-09-29.endive",  # endive name before endive existed
        "2026-01-01.zinnia",  # unknown release, older than the newest family
        "2027-01-01",  # no release name: not a Stripe version of this era
        "2020-13-40",
    ],
)
def test_unknown_version_is_typed_result(version: object) -> None:
    raw = b.event("customer.subscription.created", b.subscription())
    raw["api_version"] = version
    result = resolve(raw)
    assert isinstance(result, UnsupportedApiVersion)
    assert result.drift_kind == "UnsupportedStripeApiVersion"
    assert result.event_id == "evt_test"
    assert result.event_type == "customer.subscription.created"


@pytest.mark.parametrize("raw", [None, [], "x", {"api_version": "2020-08-27"}, {"data": 5}])
def test_resolve_never_raises_on_junk(raw: object) -> None:
    result = resolve(raw)
    assert isinstance(result, (NormalisedEvent, UnsupportedApiVersion))


def test_parse_api_version_strips_beta_suffix() -> None:
    v = parse_api_version("2016-03-07; orders_beta=v3")
    assert v is not None and str(v.date) == "2016-03-07" and v.release is None
    basil = parse_api_version("2025-03-31.basil")
    assert basil is not None and basil.release == "basil"


def test_basil_resolver_reads_periods_from_items() -> None:
    # stripe_objects/subscription.json (basil shape): periods live on the items only
    sub = b.stripe_object("subscription")
    sub["items"]["data"][0]["current_period_start"] = 1_000
    sub["items"]["data"][0]["current_period_end"] = 2_000
    second = b.stripe_object("subscription_item")
    second.update(current_period_start=1_500, current_period_end=2_600)
    sub["items"]["data"].append(second)
    assert "current_period_end" not in sub
    ev = resolve(b.event("customer.subscription.updated", sub))
    assert isinstance(ev, NormalisedEvent) and ev.family == "basil"
    assert ev.subscription is not None
    assert ev.subscription.current_period_start == 1_000
    assert ev.subscription.current_period_end == 2_600
    assert [i.current_period_end for i in ev.subscription.items] == [2_000, 2_600]
    # the item's price (not the placeholder plan) gives amount, interval and currency
    first = ev.subscription.items[0]
    assert (first.unit_amount, first.interval, first.interval_count) == (2000, "month", 1)
    assert first.currency == "USD"


def test_legacy_resolver_reads_periods_from_subscription() -> None:
    sub = b.stripe_object("subscription", basil=False)
    sub.update(current_period_start=10, current_period_end=20)
    ev = resolve(b.event("customer.subscription.updated", sub, api_version="2024-06-20"))
    assert isinstance(ev, NormalisedEvent) and ev.family == "legacy"
    assert ev.subscription is not None
    assert (ev.subscription.current_period_start, ev.subscription.current_period_end) == (10, 20)


def test_resolvers_fall_back_across_shapes() -> None:
    # legacy envelope around a basil-shaped object, and vice versa
    basil_obj = b.subscription(basil=True, period=(100, 200))
    legacy_ev = resolve(
        b.event("customer.subscription.updated", basil_obj, api_version="2020-08-27")
    )
    assert isinstance(legacy_ev, NormalisedEvent) and legacy_ev.subscription is not None
    assert legacy_ev.subscription.current_period_end == 200
    legacy_obj = b.subscription(basil=False, period=(300, 400))
    basil_ev = resolve(b.event("customer.subscription.updated", legacy_obj))
    assert isinstance(basil_ev, NormalisedEvent) and basil_ev.subscription is not None
    assert basil_ev.subscription.current_period_end == 400


def test_basil_invoice_subscription_from_parent() -> None:
    inv = b.invoice(basil=True, subscription_id="sub_parent")
    ev = resolve(b.event("invoice.paid", inv))
    assert isinstance(ev, NormalisedEvent) and ev.invoice is not None
    assert ev.invoice.subscription_id == "sub_parent"
    assert ev.invoice.charge_id is None
    legacy = resolve(
        b.event(
            "invoice.paid", b.invoice(basil=False, subscription_id="sub_old"), api_version=b.LEGACY
        )
    )
    assert isinstance(legacy, NormalisedEvent) and legacy.invoice is not None
    assert legacy.invoice.subscription_id == "sub_old"


def test_basil_invoice_payment_object() -> None:
    ip = b.stripe_object("invoice_payment")
    ip.update(
        invoice="in_1",
        amount_paid=500,
        currency="eur",
        status="paid",
        payment={"type": "payment_intent", "payment_intent": "pi_1"},
    )
    ev = resolve(b.event("invoice_payment.paid", ip))
    assert isinstance(ev, NormalisedEvent) and ev.invoice_payment is not None
    assert ev.invoice_payment.invoice_id == "in_1"
    assert ev.invoice_payment.amount_paid == 500
    assert ev.invoice_payment.currency == "EUR"
    assert ev.invoice_payment.payment_intent_id == "pi_1"


def test_placeholder_values_do_not_leak() -> None:
    # stripe_objects/invoice_payment.json has "currency": "currency" and "status": "status"
    ev = resolve(b.event("invoice_payment.paid", b.stripe_object("invoice_payment")))
    assert isinstance(ev, NormalisedEvent) and ev.invoice_payment is not None
    assert ev.invoice_payment.currency is None


def test_tenant_id_from_customer_metadata() -> None:
    cust = b.stripe_object("customer")
    cust["metadata"] = {"tenant_id": "t_42"}
    ev = resolve(b.event("customer.updated", cust, {"email": None}))
    assert isinstance(ev, NormalisedEvent)
    assert ev.tenant_id == "t_42" and ev.customer_id == cust["id"]
    sub = b.subscription(
        customer={"id": "cus_x", "object": "customer", "metadata": {"tenant_id": "t_7"}}
    )
    ev2 = resolve(b.event("customer.subscription.created", sub))
    assert isinstance(ev2, NormalisedEvent)
    assert ev2.tenant_id == "t_7" and ev2.customer_id == "cus_x"


def test_old_2014_subscription_shape_has_one_item_from_plan() -> None:
    raw = b.load_event(
        "stripe-ruby-mock/customer.subscription.trial_will_end__trialing_api2014-11-05.json"
    )
    ev = resolve(raw)
    assert isinstance(ev, NormalisedEvent) and ev.subscription is not None
    (only,) = ev.subscription.items
    assert (only.plan, only.unit_amount, only.currency) == ("Member's Club", 2499, "EUR")
    assert ev.subscription.current_period_end == 1423323929
