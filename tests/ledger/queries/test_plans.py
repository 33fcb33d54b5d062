"""ListPlans: every plan named on a subscription the ledger holds, with the live accounts on
it now, agreeing with ListAccounts' plan filter; not only the plans in the dashboard's
distribution."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from billing.ledger.v1 import queries_pb2 as pb

from tests.ledger.queries import world
from tests.ledger.queries.conftest import NOW, Ledger, days_ago, ts

if TYPE_CHECKING:
    from billing.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub as Stub

pytestmark = pytest.mark.integration


async def test_every_known_plan_with_its_live_accounts(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    # a plan only a soft-deleted account ever had: known, nobody on it
    ledger.subscription("sub_g", "cus_g", plan="Legacy", mrr=0, status="canceled",
                        ended_at=days_ago(1))
    answer = await stub.ListPlans(pb.ListPlansRequest())
    plans = {p.plan: p.accounts for p in answer.plans}
    assert [p.plan for p in answer.plans] == sorted(plans), "by name"
    assert {"Pro", "Business", "Starter", "Legacy"} <= set(plans)
    assert "" not in plans
    assert plans["Legacy"] == 0
    for plan, count in plans.items():
        filtered = await stub.ListAccounts(pb.ListAccountsRequest(plans=[plan]))
        assert filtered.page.total_count == count, plan
    dashboard = await stub.GetDashboard(pb.GetDashboardRequest(period_days=7, as_of=ts(NOW)))
    distributed = {p.plan for p in dashboard.plan_distribution if p.plan}
    assert distributed < set(plans), "more than the distribution: ended plans too"


async def test_no_plans_in_an_empty_ledger(stub: Stub) -> None:
    assert list((await stub.ListPlans(pb.ListPlansRequest())).plans) == []
