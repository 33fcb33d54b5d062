"""Simulated payloads have (at least) the key structure of real Stripe payloads."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from services.stripe_simulator import World, is_basil

from .shapes import envelope_missing, missing_paths

_SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
EVENTS_DIR = Path(os.environ.get("STRIPE_FIXTURES_DIR", _SHARED / "stripe_events"))
OBJECTS_DIR = _SHARED / "stripe_objects"
#: Cap on simulated events checked per (type, version) pair, to keep the test quick.
PER_PAIR = 40

#: 2020-08-27 types the simulator must emit so that the comparison means something.
REQUIRED_LEGACY_TYPES = {
    "customer.created", "customer.updated", "customer.subscription.created",
    "customer.subscription.updated", "invoice.created", "invoice.finalized", "invoice.paid",
    "invoice.updated", "charge.failed", "charge.refunded", "payment_intent.created",
    "payment_intent.succeeded", "payment_intent.payment_failed", "payment_method.attached",
    "payment_method.detached", "subscription_schedule.created",
    "subscription_schedule.updated", "subscription_schedule.released", "product.created",
    "price.created", "plan.created",
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
                    f"data.object.{p}" for p in missing_paths(
                        real_ev["data"]["object"], sim_ev["data"]["object"], False)]
                if problems:
                    failures.append(f"{pair} vs {name} ({sim_ev['id']}): {problems[:8]}")
                    break
    assert not failures, "\n".join(failures)
    assert len(pairs) >= 20, f"only {len(pairs)} (type, api_version) pairs compared: {pairs}"


def test_basil_objects_match_stripe_examples(small_world: World) -> None:
    examples = {p.stem: json.loads(p.read_text()) for p in OBJECTS_DIR.glob("*.json")}
    envelope = examples.pop("event")
    checked: dict[str, int] = defaultdict(int)
    failures: list[str] = []
    for ev in small_world.events:
        if not is_basil(ev["api_version"]):
            continue
        kind = ev["data"]["object"].get("object")
        if kind not in examples or checked[kind] >= 4 * PER_PAIR:
            continue
        checked[kind] += 1
        problems = [p for p in envelope_missing(envelope, ev)]
        problems += [f"data.object.{p}" for p in
                     missing_paths(examples[kind], ev["data"]["object"], True)]
        if problems:
            failures.append(f"{ev['type']} {ev['id']} vs {kind}.json: {problems[:10]}")
    assert not failures, "\n".join(failures[:30])
    expected = {"customer", "subscription", "invoice", "charge", "refund", "credit_note",
                "payment_intent", "payment_method", "subscription_schedule", "invoice_payment",
                "discount"}
    assert expected <= set(checked), f"basil kinds not compared: {expected - set(checked)}"
