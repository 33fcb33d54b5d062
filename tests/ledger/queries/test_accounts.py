"""ListAccounts (filters, sorting, keyset paging, soft deletes) and GetAccount."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from billing.common.v1 import common_pb2
from billing.ledger.v1 import queries_pb2 as pb

from tests.ledger.queries import world
from tests.ledger.queries.conftest import NOW, Ledger, days_ago, ts

if TYPE_CHECKING:
    from billing.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub as Stub

pytestmark = pytest.mark.integration


async def list_all(stub: Stub, page_size: int = 2, **kw: object) -> list[pb.AccountSummary]:
    out: list[pb.AccountSummary] = []
    token = ""
    while True:
        page = await stub.ListAccounts(
            pb.ListAccountsRequest(
                page=common_pb2.PageRequest(page_size=page_size, page_token=token),
                **kw,  # type: ignore[arg-type]
            )
        )
        out.extend(page.accounts)
        token = page.page.next_page_token
        if not token:
            return out


async def test_list_hides_soft_deleted_and_counts(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    page = await stub.ListAccounts(pb.ListAccountsRequest())
    ids = [a.account_id for a in page.accounts]
    assert page.page.total_count == 6
    assert "t_gone" not in ids
    assert ids == ["t_alpha", "cus_b", "cus_c", "cus_d", "cus_e", "t_free"]  # by name
    alpha = page.accounts[0]
    assert alpha.name == "Alpha Corp" and list(alpha.stripe_customer_ids) == ["cus_a"]
    assert alpha.committed_mrr.amount_minor == 1500 and alpha.forward_mrr.amount_minor == 0
    assert not alpha.HasField("renewal_at")  # cancelling at period end: no renewal
    charlie = next(a for a in page.accounts if a.account_id == "cus_c")
    assert charlie.committed_mrr.currency == "JPY"
    assert charlie.committed_mrr_platform.amount_minor == 6700
    delta = next(a for a in page.accounts if a.account_id == "cus_d")
    assert not delta.HasField("committed_mrr_platform")
    assert list(page.unconverted_currencies) == ["GBP"]
    # deleting a customer without a tenant removes its account from lists
    ledger.execute(
        "UPDATE ledger.accounts SET deleted_at = %s WHERE stripe_customer_id = 'cus_e'",
        (days_ago(0),),
    )
    page = await stub.ListAccounts(pb.ListAccountsRequest())
    assert page.page.total_count == 5
    assert "cus_e" not in [a.account_id for a in page.accounts]


async def test_filters(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    ledger.event("Unclassified", days_ago(1), customer_id="cus_c", event_id="evt_unclassified")

    async def ids(**kw: object) -> list[str]:
        return sorted(a.account_id for a in await list_all(stub, 50, **kw))

    assert await ids(plans=["Pro", "Business"]) == ["cus_b", "cus_c", "t_alpha"]
    assert await ids(plans=[""]) == ["cus_d", "t_free"]
    assert await ids(statuses=["canceled"]) == ["cus_e"]
    assert await ids(statuses=["active", "canceled"]) == ["cus_b", "cus_c", "cus_e", "t_alpha"]
    assert await ids(drift_detected=True) == ["cus_c"]
    assert len(await ids(drift_detected=False)) == 5
    assert await ids(unsynced=True) == ["t_free"]
    assert await ids(search="ALPHA") == ["t_alpha"]
    assert await ids(search="gmbh") == ["cus_b"]
    assert await ids(search="%") == []  # LIKE wildcards are literal
    assert await ids(search="cus_b@example") == ["cus_b"]
    page = await stub.ListAccounts(
        pb.ListAccountsRequest(plans=["Pro"], page=common_pb2.PageRequest(page_size=1))
    )
    assert page.page.total_count == 2 and len(page.accounts) == 1


@pytest.mark.parametrize("sort_by", ["name", "plan", "mrr", "renewal", "status", "created"])
@pytest.mark.parametrize("descending", [False, True])
async def test_sorting_and_paging_are_stable(
    stub: Stub, ledger: Ledger, sort_by: str, descending: bool
) -> None:
    world.build(ledger)
    # ties on every key: same plan, status, created day, mrr
    for i in range(5):
        ledger.customer(f"cus_t{i}", name="Twin", created_at=days_ago(7))
        ledger.subscription(f"sub_t{i}", f"cus_t{i}", plan="Pro", mrr=1500,
                            period_end=NOW + timedelta(days=5))
    full = await list_all(stub, 100, sort_by=sort_by, descending=descending)
    paged = await list_all(stub, 2, sort_by=sort_by, descending=descending)
    assert [a.account_id for a in paged] == [a.account_id for a in full]
    assert len({a.account_id for a in paged}) == len(paged) == 11

    def key(a: pb.AccountSummary) -> tuple[object, ...]:
        if sort_by == "name":
            value: object = a.name.lower()
        elif sort_by == "plan":
            value = a.plan
        elif sort_by == "status":
            value = a.status
        elif sort_by == "mrr":
            value = a.committed_mrr_platform.amount_minor if a.HasField(
                "committed_mrr_platform") else None
        elif sort_by == "renewal":
            value = a.renewal_at.ToDatetime() if a.HasField("renewal_at") else None
        else:
            value = a.created_at.ToDatetime() if a.HasField("created_at") else None
        return (value is None, value if value is not None else 0, a.account_id)

    # NULLs last in both directions: the values in order, then the accounts without one
    with_value = [a for a in full if not key(a)[0]]
    without = [a for a in full if key(a)[0]]
    expected = sorted(with_value, key=key, reverse=descending) + sorted(
        without, key=key, reverse=descending
    )
    assert [a.account_id for a in full] == [a.account_id for a in expected]


async def test_mrr_sort_uses_platform_currency(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    top = await stub.ListAccounts(pb.ListAccountsRequest(sort_by="mrr", descending=True))
    # GBP (no rate) and no subscription have no comparable value: last, also descending
    # (between themselves by account id, descending too); the top MRR comes first.
    ids = [a.account_id for a in top.accounts]
    assert ids[0] == "cus_c" and ids[-2:] == ["t_free", "cus_d"]
    assert all(a.HasField("committed_mrr_platform") for a in top.accounts[:-2])


async def test_list_validation(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    first = await stub.ListAccounts(
        pb.ListAccountsRequest(sort_by="mrr", page=common_pb2.PageRequest(page_size=2))
    )
    bad_requests = [
        pb.ListAccountsRequest(sort_by="name; DROP TABLE ledger.accounts"),
        pb.ListAccountsRequest(sort_by="email"),
        pb.ListAccountsRequest(statuses=["sleeping"]),
        pb.ListAccountsRequest(page=common_pb2.PageRequest(page_size=-1)),
        pb.ListAccountsRequest(page=common_pb2.PageRequest(page_token="%%%")),
        pb.ListAccountsRequest(page=common_pb2.PageRequest(page_token="WzEsMl0=")),  # [1,2]
        # a token from the mrr sort replayed under the name sort
        pb.ListAccountsRequest(
            sort_by="name", page=common_pb2.PageRequest(page_token=first.page.next_page_token)
        ),
        pb.ListAccountsRequest(
            sort_by="mrr",
            descending=True,
            page=common_pb2.PageRequest(page_token=first.page.next_page_token),
        ),
    ]
    for request in bad_requests:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListAccounts(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request


async def test_get_account(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    detail = await stub.GetAccount(pb.GetAccountRequest(account_id="t_alpha", as_of=ts(NOW)))
    assert detail.account.name == "Alpha Corp"
    assert detail.plan.plan == "Pro" and detail.plan.status == "active"
    assert detail.plan.cancel_at_period_end
    assert detail.plan.price.amount_minor == 1500 and detail.plan.interval == "month"
    assert detail.forward_mrr.amount_minor == 0
    assert detail.committed_mrr.amount_minor == 1500
    # LTV: in_a1 1000 - re_a1 500 + in_a2 300 - cn_a2 300
    assert detail.ltv.amount_minor == 500
    assert [(m.currency, m.amount_minor) for m in detail.ltv_by_currency] == [("USD", 500)]
    assert (detail.users_total, detail.users_active) == (3, 2)  # u3 only failed to log in
    japan = await stub.GetAccount(pb.GetAccountRequest(account_id="cus_c", as_of=ts(NOW)))
    assert japan.ltv.amount_minor == 6700 and japan.committed_mrr.amount_minor == 6700
    # soft-deleted accounts are still readable, marked deleted
    gone = await stub.GetAccount(pb.GetAccountRequest(account_id="t_gone"))
    assert gone.account.HasField("deleted_at")
    free = await stub.GetAccount(pb.GetAccountRequest(account_id="t_free"))
    assert free.account.unsynced and not free.HasField("plan")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetAccount(pb.GetAccountRequest(account_id="nobody"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetAccount(pb.GetAccountRequest(account_id=""))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_scheduled_change_on_plan_card(stub: Stub, ledger: Ledger) -> None:
    ledger.customer("cus_s", name="Sched", created_at=days_ago(40))
    ledger.subscription("sub_s", "cus_s", plan="Business", mrr=5000, forward=2000,
                        scheduled_plan="Starter", scheduled_mrr=2000,
                        scheduled_change_at=NOW + timedelta(days=20))
    detail = await stub.GetAccount(pb.GetAccountRequest(account_id="cus_s"))
    assert detail.plan.scheduled_plan == "Starter"
    assert detail.plan.scheduled_mrr.amount_minor == 2000
    assert detail.plan.HasField("renewal_at")
    assert detail.forward_mrr.amount_minor == 2000
