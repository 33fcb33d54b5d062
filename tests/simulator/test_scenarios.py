"""The generated history covers every lifecycle scenario the suite must handle."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from services.stripe_simulator import BASIL_VERSION, LEGACY_VERSION, World

Event = dict[str, Any]


def _of(world: World, etype: str) -> list[Event]:
    return [ev for ev in world.events if ev["type"] == etype]


def _obj(ev: Event) -> dict[str, Any]:
    return ev["data"]["object"]


def _prev(ev: Event) -> dict[str, Any]:
    return ev["data"].get("previous_attributes") or {}


@pytest.mark.parametrize("version", [LEGACY_VERSION, BASIL_VERSION])
def test_signup_sequence(small_world: World, version: str) -> None:
    types = {ev["type"] for ev in small_world.events if ev["api_version"] == version}
    assert {"customer.created", "customer.subscription.created", "invoice.created",
            "invoice.finalized", "invoice.paid", "charge.succeeded",
            "payment_intent.succeeded"} <= types
    tenants = [_obj(ev)["metadata"]["tenant_id"] for ev in _of(small_world, "customer.created")]
    assert len(tenants) == len(set(tenants)) == small_world.config.tenants


def test_trials(small_world: World) -> None:
    trials = [_obj(e) for e in _of(small_world, "customer.subscription.created")
              if _obj(e)["status"] == "trialing"]
    assert trials and all(s["trial_end"] and s["trial_end"] > s["trial_start"] for s in trials)
    ended = [e for e in _of(small_world, "customer.subscription.updated")
             if _prev(e).get("status") == "trialing" and _obj(e)["status"] == "active"]
    assert ended


def test_renewals_same_second(small_world: World) -> None:
    cycles = [e for e in _of(small_world, "invoice.created")
              if _obj(e)["billing_reason"] == "subscription_cycle"]
    assert cycles
    by_second: dict[tuple[int, str], set[str]] = defaultdict(set)
    for ev in small_world.events:
        cust = _obj(ev).get("customer")
        if isinstance(cust, str):
            by_second[(ev["created"], cust)].add(ev["type"])
    inv = _obj(cycles[0])
    same = by_second[(cycles[0]["created"], inv["customer"])]
    assert {"customer.subscription.updated", "invoice.created", "invoice.finalized",
            "charge.succeeded", "invoice.paid"} <= same


def test_upgrade_with_previous_items(small_world: World) -> None:
    ups = [e for e in _of(small_world, "customer.subscription.updated")
           if "items" in _prev(e) and _prev(e)["items"]["data"][0]["price"]["id"]
           != _obj(e)["items"]["data"][0]["price"]["id"]]
    assert any(_prev(e)["items"]["data"][0]["price"]["unit_amount"]
               < _obj(e)["items"]["data"][0]["price"]["unit_amount"] for e in ups)
    assert any(_obj(e)["billing_reason"] == "subscription_update"
               for e in _of(small_world, "invoice.created"))


def test_scheduled_downgrade_effective_and_cancelled(small_world: World) -> None:
    created = _of(small_world, "subscription_schedule.created")
    assert len({_obj(e)["subscription"] for e in created}) >= 2
    assert all(len(_obj(e)["phases"]) == 2 for e in created)
    assert _of(small_world, "subscription_schedule.updated")
    assert _of(small_world, "subscription_schedule.released")
    downs = [e for e in _of(small_world, "customer.subscription.updated")
             if "items" in _prev(e) and _prev(e)["items"]["data"][0]["price"]["unit_amount"]
             > _obj(e)["items"]["data"][0]["price"]["unit_amount"]]
    assert downs, "a scheduled downgrade must take effect at a period end"
    cancelled = [e for e in _of(small_world, "subscription_schedule.updated")
                 if len(_obj(e)["phases"]) == 1 and len(_prev(e).get("phases", [])) == 2]
    assert cancelled, "a scheduled downgrade must be cancelled before taking effect"


def test_cancel_at_period_end_reactivate_and_expiry(small_world: World) -> None:
    updated = _of(small_world, "customer.subscription.updated")
    set_ = [e for e in updated if _obj(e)["cancel_at_period_end"] is True
            and _prev(e).get("cancel_at_period_end") is False]
    back = [e for e in updated if _obj(e)["cancel_at_period_end"] is False
            and _prev(e).get("cancel_at_period_end") is True]
    assert set_ and back
    deleted = [_obj(e) for e in _of(small_world, "customer.subscription.deleted")]
    expired = [s for s in deleted if s["cancel_at_period_end"]]
    assert expired and all(s["ended_at"] == s["cancel_at"] for s in expired)
    immediate = [s for s in deleted if not s["cancel_at_period_end"]
                 and s["cancellation_details"]["reason"] == "cancellation_requested"]
    assert immediate
    assert any(s["cancellation_details"]["reason"] == "payment_failed" for s in deleted)


def test_pause(small_world: World) -> None:
    updated = _of(small_world, "customer.subscription.updated")
    assert any(_obj(e)["pause_collection"] and _prev(e).get("pause_collection", 1) is None
               for e in updated)
    assert any(_obj(e)["pause_collection"] is None and _prev(e).get("pause_collection")
               for e in updated)
    assert any(_obj(e)["status"] == "paused" for e in updated)
    assert _of(small_world, "customer.subscription.paused")
    assert _of(small_world, "customer.subscription.resumed")
    assert _of(small_world, "invoice.voided")


def test_failed_payment_past_due_and_recovery(small_world: World) -> None:
    assert _of(small_world, "invoice.payment_failed") and _of(small_world, "charge.failed")
    updated = _of(small_world, "customer.subscription.updated")
    assert any(_obj(e)["status"] == "past_due" for e in updated)
    assert any(_obj(e)["status"] == "active" and _prev(e).get("status") == "past_due"
               for e in updated)
    failed_invoices = {_obj(e)["id"] for e in _of(small_world, "invoice.payment_failed")}
    paid_later = {_obj(e)["id"] for e in _of(small_world, "invoice.paid")}
    assert failed_invoices & paid_later


def test_refunds_full_partial_and_multiple(small_world: World) -> None:
    refunded = [_obj(e) for e in _of(small_world, "charge.refunded")]
    assert any(c["refunded"] for c in refunded)
    assert any(0 < c["amount_refunded"] < c["amount"] for c in refunded)
    assert any(len(c["refunds"]["data"]) >= 2 for c in refunded)
    assert len(_of(small_world, "refund.created")) == len(refunded)


def test_credit_notes_billing_info_payment_methods(small_world: World) -> None:
    assert _of(small_world, "credit_note.created")
    assert any(_obj(e)["address"] and _prev(e).get("address", 1) is None
               for e in _of(small_world, "customer.updated"))
    assert _of(small_world, "customer.tax_id.created")
    assert any("default_payment_method" in _prev(e).get("invoice_settings", {})
               and _prev(e)["invoice_settings"]["default_payment_method"] is not None
               for e in _of(small_world, "customer.updated"))
    assert _of(small_world, "payment_method.attached")
    assert _of(small_world, "payment_method.detached")


def test_quantities_discounts_currencies_intervals(small_world: World) -> None:
    subs = [_obj(e) for e in small_world.events if _obj(e).get("object") == "subscription"]
    items = [s["items"]["data"][0] for s in subs]
    assert any(i["quantity"] > 1 for i in items)
    assert any(_obj(e)["items"]["data"][0]["quantity"]
               != _prev(e)["items"]["data"][0]["quantity"]
               for e in _of(small_world, "customer.subscription.updated") if "items" in _prev(e))
    assert {i["price"]["currency"] for i in items} >= {"usd", "eur", "jpy"}
    assert {(i["price"]["recurring"]["interval"], i["price"]["recurring"]["interval_count"])
            for i in items} >= {("month", 1), ("month", 3), ("year", 1)}
    invoices = [_obj(e) for e in _of(small_world, "invoice.paid")]
    jpy = [i for i in invoices if i["currency"] == "jpy" and i["amount_paid"]]
    assert jpy and all(i["amount_paid"] >= 500 for i in jpy), "jpy amounts are whole yen"
    coupons = [_obj(e) for e in _of(small_world, "customer.discount.created")]
    legacy_coupons = [d["coupon"] for d in coupons if "coupon" in d]
    assert any(c["percent_off"] for c in legacy_coupons)
    assert any(c["amount_off"] for c in legacy_coupons)
    assert any(i["total_discount_amounts"] for i in invoices)


def test_family_shapes(small_world: World) -> None:
    legacy = [_obj(e) for e in _of(small_world, "invoice.paid")
              if e["api_version"] == LEGACY_VERSION]
    basil = [_obj(e) for e in _of(small_world, "invoice.paid")
             if e["api_version"] == BASIL_VERSION]
    assert legacy and basil
    assert all("charge" in i and "subscription" in i for i in legacy)
    assert all("charge" not in i and i["parent"]["subscription_details"]["subscription"]
               for i in basil if i["billing_reason"] != "manual")
    subs = [(e["api_version"], _obj(e)) for e in _of(small_world, "customer.subscription.created")]
    for version, s in subs:
        if version == LEGACY_VERSION:
            assert "current_period_end" in s
        else:
            assert "current_period_end" not in s
            assert "current_period_end" in s["items"]["data"][0]
    assert _of(small_world, "invoice_payment.paid")
    assert all(e["api_version"] == BASIL_VERSION for e in _of(small_world, "invoice_payment.paid"))


def test_envelope(small_world: World) -> None:
    for ev in small_world.events[:200]:
        assert list(ev) == ["id", "object", "api_version", "created", "data", "livemode",
                            "pending_webhooks", "request", "type"]
        assert ev["livemode"] is False and ev["object"] == "event"
