"""`make run` against a Stripe that is not its simulator: the first-install import on an empty
ledger (services/devstack/first_install.py), through the real drift service and the simulator
playing the company's existing Stripe account."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.devstack import first_install
from tests.drift.conftest import DriftStack


def test_only_the_own_simulator_counts_as_the_demo() -> None:
    sim = "http://127.0.0.1:12111"
    assert first_install.uses_simulator("http://127.0.0.1:12111/", sim)
    assert not first_install.uses_simulator("https://api.stripe.com", sim)
    assert not first_install.uses_simulator("http://127.0.0.1:12112", sim)


@pytest.mark.integration
async def test_empty_ledger_gets_the_baseline_once(make_stack: Any) -> None:
    stack: DriftStack = await make_stack()
    assert first_install.ledger_is_empty(stack.database_url)
    first = await asyncio.to_thread(first_install.import_baseline, stack.drift_addr, None)
    counts = dict(part.split("=") for part in first.split(","))
    assert int(counts["subscriptions_baselined"]) > 0, first
    await stack.settled()
    assert not first_install.ledger_is_empty(stack.database_url)
    again = await asyncio.to_thread(first_install.import_baseline, stack.drift_addr, None)
    again_counts = dict(part.split("=") for part in again.split(","))
    assert again_counts["subscriptions_baselined"] == "0", again
    assert again_counts["already_done"] == counts["subscriptions_baselined"]
