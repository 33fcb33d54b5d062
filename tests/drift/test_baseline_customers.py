"""First install: every customer is baselined, also one without any subscription (reached only
through ``/v1/customers``), and a second import appends nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from billing.drift.v1 import drift_pb2, drift_pb2_grpc
from billing.ledger.v1 import ledger_pb2_grpc, queries_pb2

from services.common.grpc_client import aio_channel
from tests.drift.conftest import DriftStack
from tests.helpers import query

pytestmark = pytest.mark.integration

DAY = 86_400


def add_lonely_customer(stack: DriftStack) -> dict[str, Any]:
    """A customer created 90 days ago with no subscription and no event in the window (a
    Stripe account's customer that never subscribed, or whose subscriptions were deleted)."""
    customers = stack.sim.world.objects["customer"]
    lonely = copy.deepcopy(next(iter(customers.values())))
    lonely.update(
        id="cus_lonely0000000000001",
        created=stack.sim.app.now - 90 * DAY,
        email="lonely@example.com",
        name="Lonely Ltd",
        metadata={"tenant_id": "tenant-lonely"},
    )
    customers[lonely["id"]] = lonely
    return lonely


async def test_import_baselines_customers_without_subscriptions(make_stack: Any) -> None:
    stack: DriftStack = await make_stack()
    lonely = add_lonely_customer(stack)
    with_subs = {s["customer"] for s in stack.sim.world.objects["subscription"].values()}
    assert lonely["id"] not in with_subs
    async with aio_channel(stack.drift_addr) as channel:
        drift = drift_pb2_grpc.DriftServiceStub(channel)
        first = await drift.ImportBaseline(drift_pb2.ImportBaselineRequest(operator="install"))
        assert first.customers_baselined >= 1 and first.subscriptions_baselined > 0
        await stack.settled()
        snapshots = query(
            stack.database_url,
            "SELECT snapshot_id, kind, operator FROM ledger.stripe_snapshots WHERE object_id = %s",
            (lonely["id"],),
        )
        assert snapshots == [(f"baseline:{lonely['id']}", "baseline", "install")]
        async with aio_channel(f"127.0.0.1:{stack.ledger.grpc.port}") as ledger_channel:
            ledger = ledger_pb2_grpc.LedgerServiceStub(ledger_channel)
            account = await ledger.GetAccount(
                queries_pb2.GetAccountRequest(account_id="tenant-lonely")
            )
            assert list(account.account.stripe_customer_ids) == [lonely["id"]]
        again = await drift.ImportBaseline(drift_pb2.ImportBaselineRequest(operator="install"))
        assert (again.customers_baselined, again.subscriptions_baselined) == (0, 0)
        assert again.events_recovered == 0
        assert again.already_done == first.subscriptions_baselined
        assert query(
            stack.database_url,
            "SELECT count(*) FROM ledger.stripe_snapshots WHERE object_type = 'customer'",
        ) == [(first.customers_baselined,)]
        run = await drift.RunDriftPass(drift_pb2.RunDriftPassRequest())
        left = await drift.ListDiscrepancies(drift_pb2.ListDiscrepanciesRequest(page_size=20))
        assert run.status == "finished", run.error_message
        assert [(d.kind, d.field, d.stripe_object_id) for d in left.discrepancies] == []
