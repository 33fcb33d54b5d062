"""Simulated payloads have (at least) the key structure of real Stripe payloads."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from services.stripe_simulator import (
    BASIL_VERSION,
    CLOVER_VERSION,
    DAHLIA_VERSION,
    ENDIVE_VERSION,
    Family,
    World,
    family_of,
    generate_world,
)

from .conftest import SMALL
from .shapes import envelope_missing, missing_paths

_SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
EVENTS_DIR = Path(os.environ.get("STRIPE_FIXTURES_DIR", _SHARED / "stripe_events"))
OBJECTS_DIR = Path(os.environ.get("STRIPE_OBJECTS_DIR", _SHARED / "stripe_objects"))
#: Cap on simulated events checked per (type, version) pair, to keep the test quick.
PER_PAIR = 40

#: 2020-08-27 types the simulator must emit so that the comparison means something.
REQUIRED_LEGACY_TYPES = {
    "customer.created",
    "customer.updated",
    "customer.subscription.created",
    "customer.subscription.updated",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.updated",
    "charge.failed",
    "charge.refunded",
    "payment_intent.created",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_method.attached",
    "payment_method.detached",
    "subscription_schedule.created",
    "subscription_schedule.updated",
    "subscription_schedule.released",
    "product.created",
    "price.created",
    "plan.created",
}


def _real_events() -> dict[tuple[str, str], list[tuple[str, dict[str, Any]]]]:
    out: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for path in sorted(EVENTS_DIR.rglob("*.json")):
        try:
            ev = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(ev, dict) and ev.get("object") == "event" and ev.get("type"):
            out[(ev["type"], str(ev.get("api_version")))].append((path.name, ev))
    return out


def _sim_events(world: World) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for ev in world.events:
        bucket = out[(ev["type"], ev["api_version"])]
        if len(bucket) < PER_PAIR:
            bucket.append(ev)
    return out


def test_fixture_dirs_exist() -> None:
    assert EVENTS_DIR.is_dir(), f"real Stripe events not found at {EVENTS_DIR}"
    assert OBJECTS_DIR.is_dir(), f"Stripe example objects not found at {OBJECTS_DIR}"


def test_legacy_types_emitted(small_world: World) -> None:
    emitted = {ev["type"] for ev in small_world.events if ev["api_version"] == "2020-08-27"}
    assert REQUIRED_LEGACY_TYPES - emitted == set()


def test_shapes_match_real_events(small_world: World) -> None:
    real = _real_events()
    sim = _sim_events(small_world)
    pairs = sorted(set(real) & set(sim))
    failures: list[str] = []
    for pair in pairs:
        for name, real_ev in real[pair]:
            for sim_ev in sim[pair]:
                problems = envelope_missing(real_ev, sim_ev) + [
                    f"data.object.{p}"
                    for p in missing_paths(
                        real_ev["data"]["object"], sim_ev["data"]["object"], False
                    )
                ]
                if problems:
                    failures.append(f"{pair} vs {name} ({sim_ev['id']}): {problems[:8]}")
                    break
    assert not failures, "\n".join(failures)
    assert len(pairs) >= 20, f"only {len(pairs)} (type, api_version) pairs compared: {pairs}"


#: Keys of Stripe's current example objects (dahlia-era, 2026-08) that an older family does not
#: have yet, per object kind (everything else must be there).
#: (``"*"``: every kind.)
ARRIVED_LATER: dict[Family, dict[str, set[str]]] = {
    Family.BASIL: {
        "*": {"customer_account"},  # 2025-12-15.clover
        "discount": {"source"},  # 2025-09-30.clover
        "subscription": {"billing_schedules"},  # 2026-05-27.dahlia
        "credit_note": {"refunds[].payment_record_refund", "refunds[].type"},  # 2025-10-29
    },
    Family.CLOVER: {"subscription": {"billing_schedules"}},
    Family.DAHLIA: {},
    Family.ENDIVE: {},
}
#: One version per family, plus a made-up later version (rendered in the newest shapes).
FAMILY_VERSIONS = [BASIL_VERSION, CLOVER_VERSION, DAHLIA_VERSION, ENDIVE_VERSION, "2027-03-31.fig"]


@pytest.fixture(scope="module", params=FAMILY_VERSIONS)
def family_world(request: pytest.FixtureRequest) -> World:
    return generate_world(replace(SMALL, api_versions=((request.param, 1),)))


def test_objects_match_stripe_examples(family_world: World) -> None:
    examples = {p.stem: json.loads(p.read_text()) for p in OBJECTS_DIR.glob("*.json")}
    envelope = examples.pop("event")
    version = family_world.config.api_versions[0][0]
    later = ARRIVED_LATER[family_of(version)]
    checked: dict[str, int] = defaultdict(int)
    failures: list[str] = []
    for ev in family_world.events:
        assert ev["api_version"] == version
        kind = ev["data"]["object"].get("object")
        if kind not in examples or checked[kind] >= 4 * PER_PAIR:
            continue
        checked[kind] += 1
        problems = [p for p in envelope_missing(envelope, ev)]
        problems += [
            f"data.object.{p}"
            for p in missing_paths(examples[kind], ev["data"]["object"], True)
            if p not in later.get(kind, set()) | later.get("*", set())
        ]
        if problems:
            failures.append(f"{ev['type']} {ev['id']} vs {kind}.json: {problems[:10]}")
    assert not failures, "\n".join(failures[:30])
    expected = {
        "customer",
        "subscription",
        "invoice",
        "charge",
        "refund",
        "credit_note",
        "payment_intent",
        "payment_method",
        "subscription_schedule",
        "invoice_payment",
        "discount",
    }
    assert expected <= set(checked), f"{version} kinds not compared: {expected - set(checked)}"


def test_family_differences_are_rendered(family_world: World) -> None:
    family = family_of(family_world.config.api_versions[0][0])
    discounts = [
        ev["data"]["object"]
        for ev in family_world.events
        if ev["type"] == "customer.discount.created"
    ]
    subs = [
        ev["data"]["object"]
        for ev in family_world.events
        if ev["type"] == "customer.subscription.created"
    ]
    assert discounts and subs
    for d in discounts:
        if family >= Family.CLOVER:  # coupon referenced by id through source, not embedded
            assert "coupon" not in d and isinstance(d["source"]["coupon"], str)
        else:
            assert "source" not in d and d["coupon"]["object"] == "coupon"
    for s in subs:
        expected_mode = "flexible" if family >= Family.CLOVER else "classic"
        assert s["billing_mode"]["type"] == expected_mode
        assert ("billing_schedules" in s) == (family >= Family.DAHLIA)
        assert ("billed_until" in s["items"]["data"][0]) == (family >= Family.DAHLIA)
        assert ("customer_account" in s) == (family >= Family.CLOVER)
    notes = [
        ev["data"]["object"] for ev in family_world.events if ev["type"] == "credit_note.created"
    ]
    refunds = [r for n in notes for r in n["refunds"]]
    assert refunds
    assert all(("type" in r) == (family >= Family.CLOVER) for r in refunds)
