"""Fixture locations and small builders of Stripe payloads from the shared object shapes.

``stripe_objects/`` holds Stripe's own example objects (basil shape at the top level,
``pre_basil_2025-02-14/`` for the legacy shape). The builders start from those files and
replace only the fields a test cares about, so the payloads keep the real shape.
"""

from __future__ import annotations

import copy
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
BASIL = "2025-03-31.basil"
LEGACY = "2024-06-20"
T0 = 1_700_000_000  # a fixed "now" for built events
MONTH = 30 * 86_400


def events_dir() -> Path:
    env = os.environ.get("STRIPE_FIXTURES_DIR")
    return Path(env) if env else REPO.parent / "shared" / "fixtures" / "stripe_events"


def objects_dir() -> Path:
    env = os.environ.get("STRIPE_OBJECTS_DIR")
    return Path(env) if env else REPO.parent / "shared" / "fixtures" / "stripe_objects"


def event_files() -> list[Path]:
    return sorted(events_dir().rglob("*.json"))


def load_event(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((events_dir() / relative).read_text(encoding="utf-8"))
    return data


@cache
def _object(name: str, basil: bool) -> dict[str, Any]:
    base = objects_dir() if basil else objects_dir() / "pre_basil_2025-02-14"
    data: dict[str, Any] = json.loads((base / f"{name}.json").read_text(encoding="utf-8"))
    return data


def stripe_object(name: str, *, basil: bool = True) -> dict[str, Any]:
    return copy.deepcopy(_object(name, basil))


def price(
    unit_amount: int | None = 2000,
    *,
    interval: str = "month",
    interval_count: int = 1,
    currency: str = "usd",
    price_id: str = "price_basic",
    nickname: str | None = None,
    lookup_key: str | None = None,
    usage_type: str = "licensed",
) -> dict[str, Any]:
    p = stripe_object("price")
    p.update(
        id=price_id,
        unit_amount=unit_amount,
        unit_amount_decimal=None if unit_amount is None else str(unit_amount),
        currency=currency,
        nickname=nickname,
        lookup_key=lookup_key,
        transform_quantity=None,
    )
    p["recurring"].update(interval=interval, interval_count=interval_count, usage_type=usage_type)
    return p


def item(
    p: dict[str, Any],
    quantity: int = 1,
    *,
    basil: bool = True,
    period: tuple[int, int] = (T0 - MONTH // 2, T0 + MONTH // 2),
    item_id: str | None = None,
) -> dict[str, Any]:
    it = stripe_object("subscription_item", basil=basil)
    it.update(id=item_id or f"si_{p['id']}", price=p, quantity=quantity)
    # the legacy "plan" mirror of the price
    it["plan"] = {
        "object": "plan",
        "id": p["id"],
        "amount": p["unit_amount"],
        "currency": p["currency"],
        "interval": p["recurring"]["interval"],
        "interval_count": p["recurring"]["interval_count"],
        "nickname": p["nickname"],
        "usage_type": p["recurring"]["usage_type"],
        "product": p["product"],
    }
    if basil:
        it["current_period_start"], it["current_period_end"] = period
    else:
        it.pop("current_period_start", None)
        it.pop("current_period_end", None)
    return it


def subscription(
    items: list[dict[str, Any]] | None = None,
    *,
    basil: bool = True,
    status: str = "active",
    period: tuple[int, int] = (T0 - MONTH // 2, T0 + MONTH // 2),
    sub_id: str = "sub_test",
    customer: str | dict[str, Any] = "cus_test",
    currency: str = "usd",
    **overrides: Any,
) -> dict[str, Any]:
    """An ordinary active subscription (no trial, cancellation, pause, pending update)."""
    s = stripe_object("subscription", basil=basil)
    if items is None:
        items = [item(price(), basil=basil, period=period)]
    s.update(
        id=sub_id,
        customer=customer,
        currency=currency,
        status=status,
        cancel_at=None,
        canceled_at=None,
        cancel_at_period_end=False,
        ended_at=None,
        trial_start=None,
        trial_end=None,
        pause_collection=None,
        pending_update=None,
        schedule=None,
        discounts=[],
        latest_invoice="in_prev",
        cancellation_details={"comment": None, "feedback": None, "reason": None},
    )
    s["items"] = {"object": "list", "data": items, "has_more": False}
    if basil:
        s.pop("current_period_start", None)
        s.pop("current_period_end", None)
    else:
        s["current_period_start"], s["current_period_end"] = period
        s["discount"] = None
    s.update(overrides)
    return s


def coupon_discount(
    *,
    percent_off: float | None = None,
    amount_off: int | None = None,
    currency: str | None = "usd",
    duration: str = "forever",
    basil: bool = True,
    end: int | None = None,
) -> dict[str, Any]:
    c = stripe_object("coupon")
    c.update(percent_off=percent_off, amount_off=amount_off, currency=currency, duration=duration)
    d = stripe_object("discount")
    d.update(id=f"di_{c['id']}_{percent_off}_{amount_off}", end=end)
    if basil:
        d["source"] = {"type": "coupon", "coupon": c}
    else:
        d.pop("source", None)
        d["coupon"] = c
    return d


def invoice(
    *, basil: bool = True, subscription_id: str | None = "sub_test", **overrides: Any
) -> dict[str, Any]:
    inv = stripe_object("invoice", basil=basil)
    inv.update(
        id="in_test",
        customer="cus_test",
        status="paid",
        billing_reason="subscription_cycle",
        amount_due=2000,
        amount_paid=2000,
        amount_remaining=0,
        attempt_count=1,
        attempted=True,
    )
    inv["lines"] = {"object": "list", "data": [], "has_more": False}
    if basil:
        inv["subscription"] = None
        inv["parent"] = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": subscription_id},
        }
    else:
        inv["subscription"] = subscription_id
        inv["paid"] = inv["status"] == "paid"
    inv.update(overrides)
    if not basil and "paid" not in overrides:
        inv["paid"] = inv["status"] == "paid"
    return inv


def schedule(
    phases: list[tuple[int, int, list[tuple[Any, int]]]], **overrides: Any
) -> dict[str, Any]:
    """A subscription schedule; each phase is (start, end, [(price id or price dict, qty)])."""
    sch = stripe_object("subscription_schedule")
    template_phase = sch["phases"][0]
    built = []
    for start, end, entries in phases:
        phase = copy.deepcopy(template_phase)
        phase.update(start_date=start, end_date=end, currency="usd")
        phase["items"] = [
            {"price": p, "quantity": q, "discounts": [], "metadata": {}, "tax_rates": []}
            for p, q in entries
        ]
        built.append(phase)
    sch.update(
        id="sub_sched_test",
        customer="cus_test",
        subscription="sub_test",
        status="active",
        phases=built,
        released_at=None,
        released_subscription=None,
        canceled_at=None,
        completed_at=None,
    )
    sch["current_phase"] = {"start_date": phases[0][0], "end_date": phases[0][1]}
    sch.update(overrides)
    return sch


def event(
    event_type: str,
    obj: dict[str, Any],
    previous_attributes: dict[str, Any] | None = None,
    *,
    api_version: str | None = BASIL,
    created: int = T0,
    event_id: str = "evt_test",
) -> dict[str, Any]:
    env = stripe_object("event")
    env.update(id=event_id, type=event_type, api_version=api_version, created=created)
    env["data"] = {"object": obj}
    if previous_attributes is not None:
        env["data"]["previous_attributes"] = previous_attributes
    return env
