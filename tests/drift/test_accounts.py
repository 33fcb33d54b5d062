"""Drift names accounts as the ledger does, also for customers none of whose subscriptions
the ledger knows (the back-office opens the account a finding names)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from billing.drift.v1 import drift_pb2, drift_pb2_grpc
from billing.ledger.v1 import (
    directory_pb2,
    directory_pb2_grpc,
    drift_inputs_pb2,
    ledger_pb2_grpc,
    queries_pb2,
)

from services.common.grpc_client import aio_channel
from tests.drift.conftest import DriftStack
from tests.helpers import query

pytestmark = pytest.mark.integration

DAY = 86_400


async def test_lookup_customer_accounts(stack: DriftStack) -> None:
    """The ledger's keyed read: a customer's tenant, a link's tenant (a link alone, no
    customer row), unknown customers absent, bad requests INVALID_ARGUMENT."""
    customers = stack.sim.world.objects["customer"]
    known = sorted(customers)[:2]
    async with aio_channel(f"127.0.0.1:{stack.ledger.grpc.port}") as channel:
        directory = directory_pb2_grpc.DirectoryServiceStub(channel)
        await directory.UpsertTenant(
            directory_pb2.UpsertTenantRequest(tenant_id="t-linked", name="Linked")
        )
        await directory.LinkStripeCustomer(
            directory_pb2.LinkStripeCustomerRequest(
                stripe_customer_id="cus_only_linked", tenant_id="t-linked"
            )
        )
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        asked = [*known, "cus_only_linked", "cus_never_seen"]
        found = await ledger.LookupCustomerAccounts(
            drift_inputs_pb2.LookupCustomerAccountsRequest(stripe_customer_ids=asked)
        )
        assert [(a.stripe_customer_id, a.account_id, a.customer_row) for a in found.accounts] == [
            *((c, customers[c]["metadata"]["tenant_id"], True) for c in known),
            ("cus_only_linked", "t-linked", False),
        ]
        for bad in (
            ["cus_a", " "],
            ["cus_nul\x00"],
            ["cus_" + "x" * 252],
            [f"cus_{n}" for n in range(10_001)],
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await ledger.LookupCustomerAccounts(
                    drift_inputs_pb2.LookupCustomerAccountsRequest(stripe_customer_ids=bad)
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # The other keyed reads check their ids the same way (one helper).
        for keyed in (
            lambda: ledger.StreamSubscriptionStates(
                drift_inputs_pb2.StreamSubscriptionStatesRequest(subscription_ids=["sub_\x00"])
            ),
            lambda: ledger.StreamKnownObjects(
                drift_inputs_pb2.StreamKnownObjectsRequest(kind="invoice", ids=["in_\x00"])
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                _ = [batch async for batch in keyed()]
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_findings_name_the_ledger_account(make_stack: Any) -> None:
    """Customer A: the ledger knows the customer but none of its subscriptions (every event
    of its subscription lost); customer B: the ledger knows nothing of it. A's findings name
    A's account (the back-office opens it); B's keep B's Stripe customer id."""
    stack: DriftStack = await make_stack()
    subs = sorted(stack.sim.world.objects["subscription"].values(), key=lambda s: s["id"])
    lost_sub, lost_customer = subs[0], subs[1]["customer"]
    assert lost_sub["customer"] != lost_customer
    await stack.post_sim("/_sim/suppress", {"object_id": lost_sub["id"]})
    await stack.post_sim("/_sim/suppress", {"object_id": lost_customer})
    await stack.deliver()
    await stack.settled()
    stack.sim.advance(40 * DAY)  # nothing lost is recoverable from events.list any more
    tenant = stack.sim.world.objects["customer"][lost_sub["customer"]]["metadata"]["tenant_id"]
    async with aio_channel(stack.drift_addr) as channel:
        drift = drift_pb2_grpc.DriftServiceStub(channel)
        run = await drift.RunDriftPass(drift_pb2.RunDriftPassRequest())
        assert run.status == "finished", run.error_message
        found = await drift.ListDiscrepancies(drift_pb2.ListDiscrepanciesRequest(page_size=500))
    about_a = [d for d in found.discrepancies if d.subscription_id == lost_sub["id"]]
    about_b = [d for d in found.discrepancies if d.subscription_id == subs[1]["id"]]
    assert about_a and about_b
    assert {d.account_id for d in about_a} == {tenant}
    assert {d.account_id for d in about_b} == {lost_customer}
    async with aio_channel(f"127.0.0.1:{stack.ledger.grpc.port}") as channel:
        ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        detail = await ledger.GetAccount(queries_pb2.GetAccountRequest(account_id=tenant))
        assert lost_sub["customer"] in detail.account.stripe_customer_ids
    checks = dict(
        query(
            stack.database_url,
            "SELECT subscription_id, account_id FROM drift.subscription_checks"
            " WHERE subscription_id = ANY(%s)",
            ([lost_sub["id"], subs[1]["id"]],),
        )
    )
    assert checks == {lost_sub["id"]: tenant, subs[1]["id"]: lost_customer}
