"""Explicit Stripe customer -> tenant links (DirectoryService.LinkStripeCustomer & co.) and how
every back-office read resolves accounts through them: link ?? metadata.tenant_id ?? customer."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from billing.common.v1 import common_pb2
from billing.ledger.v1 import directory_pb2 as dpb
from billing.ledger.v1 import ledger_pb2
from billing.ledger.v1 import queries_pb2 as qpb

from tests.ledger.links.conftest import Services
from tests.ledger.queries.conftest import NOW, Ledger, days_ago, ts

pytestmark = pytest.mark.integration


async def accounts(services: Services, **kw: Any) -> dict[str, qpb.AccountSummary]:
    page = await services.ledger.ListAccounts(qpb.ListAccountsRequest(**kw))
    return {a.account_id: a for a in page.accounts}


async def event_accounts(services: Services, account_id: str = "") -> dict[str, str]:
    page = await services.ledger.ListBillingEvents(
        qpb.ListBillingEventsRequest(account_id=account_id, include_noop=True)
    )
    return {e.stripe_event_id: e.account_id for e in page.events}


async def event_account(services: Services, event_id: str) -> str:
    event = await services.ledger.GetBillingEvent(
        ledger_pb2.GetBillingEventRequest(stripe_event_id=event_id)
    )
    return event.account_id


async def link(services: Services, customer: str, tenant: str, **kw: str) -> dpb.CustomerLink:
    return await services.directory.LinkStripeCustomer(
        dpb.LinkStripeCustomerRequest(stripe_customer_id=customer, tenant_id=tenant, **kw)
    )


def support_snapshot(ledger: Ledger) -> list[tuple[Any, ...]]:
    return ledger.execute("SELECT * FROM ledger.query_accounts ORDER BY account_id")


def build_unlinked(ledger: Ledger) -> str:
    """Tenant t_host (no customer) and cus_x without metadata: MRR 1200, revenue 1000."""
    ledger.tenant("t_host", "Host Co", days_ago(30))
    ledger.customer("cus_x", name="X (Stripe)", created_at=days_ago(10))
    ledger.subscription("sub_x", "cus_x", plan="Pro", mrr=1200)
    event_id = ledger.event(
        "SubscriptionCreated", days_ago(10), customer_id="cus_x", subscription_id="sub_x",
        committed=1200, delta=1200,
    )
    ledger.invoice("in_x", "cus_x", total=1000, created=days_ago(9), paid_at=days_ago(9))
    return event_id


async def test_link_moves_a_customer_under_its_tenant_and_unlink_reverts(
    services: Services, ledger: Ledger
) -> None:
    event_id = build_unlinked(ledger)
    before = await accounts(services)
    assert set(before) == {"t_host", "cus_x"}
    assert before["t_host"].unsynced and before["t_host"].committed_mrr.amount_minor == 0
    assert before["cus_x"].committed_mrr.amount_minor == 1200
    assert await event_account(services, event_id) == "cus_x"
    assert await event_accounts(services, "t_host") == {}
    initial = support_snapshot(ledger)

    made = await link(services, "cus_x", "t_host", linked_by="ops@example.com", note="ticket 42")
    assert (made.tenant_id, made.linked_by, made.note) == ("t_host", "ops@example.com", "ticket 42")
    assert made.HasField("linked_at")

    after = await accounts(services)
    assert set(after) == {"t_host"}
    host = after["t_host"]
    assert list(host.stripe_customer_ids) == ["cus_x"] and host.tenant_id == "t_host"
    assert host.name == "Host Co" and not host.unsynced
    assert host.committed_mrr.amount_minor == 1200 and host.plan == "Pro"
    detail = await services.ledger.GetAccount(
        qpb.GetAccountRequest(account_id="t_host", as_of=ts(NOW))
    )
    assert [m.amount_minor for m in detail.ltv_by_currency] == [1000]
    assert [p.subscription_id for p in detail.subscriptions] == ["sub_x"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await services.ledger.GetAccount(qpb.GetAccountRequest(account_id="cus_x"))
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    assert await event_accounts(services, "t_host") == {event_id: "t_host"}
    assert await event_account(services, event_id) == "t_host"
    invoices = await services.ledger.ListInvoices(qpb.ListInvoicesRequest(account_id="t_host"))
    assert [(r.row_id, r.account_id) for r in invoices.rows] == [("in_x", "t_host")]
    # the trigger-maintained rows equal a rebuild from scratch
    linked = support_snapshot(ledger)
    ledger.execute("SELECT ledger.query_support_rebuild()")
    assert support_snapshot(ledger) == linked

    removed = await services.directory.UnlinkStripeCustomer(
        dpb.UnlinkStripeCustomerRequest(stripe_customer_id="cus_x")
    )
    assert removed.tenant_id == "t_host"
    reverted = await accounts(services)
    assert set(reverted) == {"t_host", "cus_x"} and reverted["t_host"].unsynced
    assert await event_account(services, event_id) == "cus_x"
    assert await event_accounts(services, "cus_x") == {event_id: "cus_x"}
    assert support_snapshot(ledger) == initial


async def test_link_made_before_the_customer_arrives(services: Services, ledger: Ledger) -> None:
    """Order independence: link first, Stripe rows later - same read model as the reverse."""
    await link(services, "cus_x", "t_host")
    ledger.tenant("t_host", "Host Co", days_ago(30))
    assert (await accounts(services))["t_host"].unsynced
    build_unlinked_rest(ledger)
    host = (await accounts(services))["t_host"]
    assert not host.unsynced and host.committed_mrr.amount_minor == 1200
    incremental = support_snapshot(ledger)
    ledger.execute("SELECT ledger.query_support_rebuild()")
    assert support_snapshot(ledger) == incremental


def build_unlinked_rest(ledger: Ledger) -> None:
    ledger.customer("cus_x", name="X (Stripe)", created_at=days_ago(10))
    ledger.subscription("sub_x", "cus_x", plan="Pro", mrr=1200)


async def test_explicit_link_overrides_metadata(services: Services, ledger: Ledger) -> None:
    ledger.tenant("t_meta", "Meta Co", days_ago(30))
    ledger.tenant("t_real", "Real Co", days_ago(30))
    ledger.customer("cus_m", name="M", created_at=days_ago(5), tenant_id="t_meta")
    ledger.subscription("sub_m", "cus_m", plan="Business", mrr=5000)
    event_id = ledger.event(
        "SubscriptionCreated", days_ago(5), customer_id="cus_m", subscription_id="sub_m",
        committed=5000, delta=5000, tenant_id="t_meta",
    )
    before = await accounts(services)
    assert before["t_meta"].committed_mrr.amount_minor == 5000 and before["t_real"].unsynced
    assert await event_account(services, event_id) == "t_meta"

    await link(services, "cus_m", "t_real")
    after = await accounts(services)
    assert after["t_meta"].unsynced and after["t_meta"].committed_mrr.amount_minor == 0
    assert list(after["t_meta"].stripe_customer_ids) == []
    assert not after["t_real"].unsynced and after["t_real"].committed_mrr.amount_minor == 5000
    assert await event_account(services, event_id) == "t_real"
    # the payload still names t_meta, but the link wins: the event is only under t_real
    assert await event_accounts(services, "t_meta") == {}
    assert await event_accounts(services, "t_real") == {event_id: "t_real"}
    assert await event_accounts(services) == {event_id: "t_real"}

    # re-linking replaces the link (one tenant per customer)
    await link(services, "cus_m", "t_meta")
    again = await accounts(services)
    assert again["t_real"].unsynced and again["t_meta"].committed_mrr.amount_minor == 5000
    snapshot = support_snapshot(ledger)
    ledger.execute("SELECT ledger.query_support_rebuild()")
    assert support_snapshot(ledger) == snapshot


async def test_link_to_a_tenant_not_in_the_directory(services: Services, ledger: Ledger) -> None:
    build_unlinked_rest(ledger)
    await link(services, "cus_x", "t_later")
    page = await accounts(services)
    assert set(page) == {"t_later"}
    assert page["t_later"].tenant_id == "t_later" and page["t_later"].name == "X (Stripe)"
    ledger.tenant("t_later", "Later Inc", days_ago(1))  # the host feeds the tenant afterwards
    assert (await accounts(services))["t_later"].name == "Later Inc"


async def test_unsynced_filter_follows_links(services: Services, ledger: Ledger) -> None:
    build_unlinked(ledger)
    unsynced = await accounts(services, unsynced=True)
    assert set(unsynced) == {"t_host"}
    await link(services, "cus_x", "t_host")
    assert await accounts(services, unsynced=True) == {}
    assert set(await accounts(services, unsynced=False)) == {"t_host"}


async def test_validation_and_not_found(services: Services) -> None:
    bad = [
        dpb.LinkStripeCustomerRequest(stripe_customer_id="", tenant_id="t"),
        dpb.LinkStripeCustomerRequest(stripe_customer_id="cus_1", tenant_id="  "),
        dpb.LinkStripeCustomerRequest(stripe_customer_id="cus_1", tenant_id="t", note="x" * 5000),
    ]
    for request in bad:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await services.directory.LinkStripeCustomer(request)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await services.directory.UnlinkStripeCustomer(
            dpb.UnlinkStripeCustomerRequest(stripe_customer_id="cus_none")
        )
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await services.directory.UnlinkStripeCustomer(dpb.UnlinkStripeCustomerRequest())
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await services.directory.ListCustomerLinks(
            dpb.ListCustomerLinksRequest(page=common_pb2.PageRequest(page_token="garbage"))
        )
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_list_links_pages(services: Services) -> None:
    for i in range(5):
        await link(services, f"cus_{i}", "t_a" if i % 2 == 0 else "t_b")
    seen: list[str] = []
    token = ""
    while True:
        page = await services.directory.ListCustomerLinks(
            dpb.ListCustomerLinksRequest(page=common_pb2.PageRequest(page_size=2, page_token=token))
        )
        assert page.page.total_count == 5
        seen.extend(x.stripe_customer_id for x in page.links)
        token = page.page.next_page_token
        if not token:
            break
    assert seen == [f"cus_{i}" for i in range(5)]
    only_b = await services.directory.ListCustomerLinks(
        dpb.ListCustomerLinksRequest(tenant_id="t_b")
    )
    assert [x.stripe_customer_id for x in only_b.links] == ["cus_1", "cus_3"]
    assert only_b.page.total_count == 2
