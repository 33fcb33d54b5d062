"""ListBillingEvents (lenses, NoOp, exact counts, paging) and ListInvoices (row kinds)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from billing.common.v1 import common_pb2
from billing.ledger.v1 import queries_pb2 as pb

from services.ledger.queries.lenses import MRR_TYPES, STATE_TYPES
from tests.ledger.queries import world
from tests.ledger.queries.conftest import NOW, Ledger, days_ago, ts

if TYPE_CHECKING:
    from billing.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub as Stub

pytestmark = pytest.mark.integration


def period(start: datetime | None = None, end: datetime | None = None) -> common_pb2.Period:
    p = common_pb2.Period()
    if start is not None:
        p.start.CopyFrom(ts(start))
    if end is not None:
        p.end.CopyFrom(ts(end))
    return p


async def all_events(stub: Stub, page_size: int = 3, **kw: object) -> tuple[list[str], int]:
    ids: list[str] = []
    token, total = "", -1
    while True:
        page = await stub.ListBillingEvents(
            pb.ListBillingEventsRequest(
                page=common_pb2.PageRequest(page_size=page_size, page_token=token),
                **kw,  # type: ignore[arg-type]
            )
        )
        ids.extend(e.stripe_event_id for e in page.events)
        total = page.page.total_count
        token = page.page.next_page_token
        if not token:
            return ids, total


async def test_lenses_overlap_and_hide_noop(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    page = await stub.ListBillingEvents(
        pb.ListBillingEventsRequest(include_noop=True, page=common_pb2.PageRequest(page_size=100))
    )
    rows = {e.stripe_event_id: e for e in page.events}
    assert len(rows) == page.page.total_count == 11
    by_lens: dict[int, set[str]] = {}
    for lens in (pb.EVENT_LENS_ALL, pb.EVENT_LENS_MRR_IMPACT, pb.EVENT_LENS_SUBSCRIPTION_STATE,
                 pb.EVENT_LENS_OTHER):
        ids, total = await all_events(stub, lens=lens)
        assert len(ids) == total == len(set(ids))
        by_lens[lens] = set(ids)
    mrr, state, other = (by_lens[pb.EVENT_LENS_MRR_IMPACT],
                         by_lens[pb.EVENT_LENS_SUBSCRIPTION_STATE], by_lens[pb.EVENT_LENS_OTHER])
    assert "evt_noop_a" not in by_lens[pb.EVENT_LENS_ALL]
    assert by_lens[pb.EVENT_LENS_ALL] == set(rows) - {"evt_noop_a"}
    assert mrr & state  # an upgrade is both
    assert not (other & (mrr | state))
    assert mrr | state | other == by_lens[pb.EVENT_LENS_ALL]
    assert "evt_renewal_a" in state and "evt_renewal_a" not in mrr  # renewal, same price
    assert {"evt_refund_a", "evt_info_b"} <= other
    for event_id in mrr:
        row = rows[event_id]
        assert row.event_type in MRR_TYPES or row.amount_delta.amount_minor != 0
        assert "mrr_impact" in row.lenses
    for event_id in state:
        assert rows[event_id].event_type in STATE_TYPES
    noop, _ = await all_events(stub, include_noop=True, lens=pb.EVENT_LENS_OTHER)
    assert "evt_noop_a" in noop
    renewal = rows["evt_renewal_a"]
    assert renewal.committed_mrr.amount_minor == 1500 and renewal.committed_mrr_carried
    assert renewal.account_id == "t_alpha"


async def test_event_counts_with_partial_days(stub: Stub, ledger: Ledger) -> None:
    # 4 events a day, every 6 hours, over 10 days; some with a delta
    base = NOW.replace(hour=0) - timedelta(days=10)
    for i in range(40):
        at = base + timedelta(hours=6 * i)
        ledger.event("SubscriptionRenewed" if i % 3 else "SubscriptionUpgraded", at,
                     subscription_id=f"sub_{i % 4}", committed=1000 + i,
                     delta=0 if i % 3 else 5)
        if i % 5 == 0:
            ledger.event("PaymentFailed", at + timedelta(minutes=1), committed=None)
            ledger.event("NoOp", at + timedelta(minutes=2), committed=None)
    windows = [
        (None, None),
        (base + timedelta(hours=3), None),
        (None, base + timedelta(days=4, hours=13)),
        (base + timedelta(hours=7), base + timedelta(days=6, hours=5)),
        (base + timedelta(days=2), base + timedelta(days=5)),  # whole days
        (base + timedelta(days=3, hours=1), base + timedelta(days=3, hours=20)),  # inside a day
        (base + timedelta(days=3, hours=1), base + timedelta(days=4, hours=1)),  # two halves
    ]
    for start, end in windows:
        for lens in (pb.EVENT_LENS_ALL, pb.EVENT_LENS_MRR_IMPACT, pb.EVENT_LENS_OTHER):
            for include_noop in (False, True):
                ids, total = await all_events(
                    stub, 7, period=period(start, end), lens=lens, include_noop=include_noop
                )
                assert total == len(ids), (start, end, lens, include_noop)
                expected = ledger.execute(
                    "SELECT count(*) FROM ledger.billing_events WHERE"
                    " (%s::timestamptz IS NULL OR occurred_at >= %s)"
                    " AND (%s::timestamptz IS NULL OR occurred_at < %s)"
                    " AND (%s OR event_type <> 'NoOp')"
                    " AND (%s = 1 OR (%s = 2 AND (event_type = 'SubscriptionUpgraded'"
                    "      OR COALESCE(amount_delta, 0) <> 0))"
                    "      OR (%s = 4 AND event_type IN ('PaymentFailed', 'NoOp')))",
                    (start, start, end, end, include_noop, lens, lens, lens),
                )[0][0]
                assert total == expected, (start, end, lens, include_noop)


async def test_event_paging_order_and_account_filter(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    for i in range(6):  # same timestamp: the event id breaks the tie
        ledger.event("PaymentFailed", days_ago(1), customer_id="cus_b", committed=None,
                     event_id=f"evt_tie_{i}")
    newest, total = await all_events(stub, 2)
    oldest, _ = await all_events(stub, 4, oldest_first=True)
    assert newest == list(reversed(oldest)) and len(newest) == total == 16
    mine, total = await all_events(stub, 2, account_id="cus_b")
    assert total == len(mine) == 8
    assert {"evt_info_b", "evt_tie_0"} <= set(mine)
    alpha, _ = await all_events(stub, 50, account_id="t_alpha", period=period(days_ago(1.5)))
    assert set(alpha) == {"evt_renewal_a", "evt_refund_a"} | {
        e for e in alpha if e.startswith("evt_0")
    }
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListBillingEvents(pb.ListBillingEventsRequest(account_id="cus_zzz"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    page = await stub.ListBillingEvents(
        pb.ListBillingEventsRequest(page=common_pb2.PageRequest(page_size=2))
    )
    for request in (
        pb.ListBillingEventsRequest(period=period(NOW, NOW - timedelta(days=1))),
        pb.ListBillingEventsRequest(lens=42),  # type: ignore[arg-type]
        pb.ListBillingEventsRequest(
            oldest_first=True,
            page=common_pb2.PageRequest(page_token=page.page.next_page_token),
        ),
        pb.ListInvoicesRequest(page=common_pb2.PageRequest(page_token=page.page.next_page_token)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            if isinstance(request, pb.ListInvoicesRequest):
                await stub.ListInvoices(request)
            else:
                await stub.ListBillingEvents(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_invoice_rows(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    page = await stub.ListInvoices(
        pb.ListInvoicesRequest(page=common_pb2.PageRequest(page_size=100))
    )
    rows = {r.row_id: r for r in page.rows}
    # 7 invoices + cn_b1 + cn_a2 + re_a1 (re_a2 is covered by cn_a2: no row of its own)
    assert set(rows) == {"in_a1", "in_a2", "in_b1", "in_c1", "in_d1", "in_x", "in_e0",
                         "cn_b1", "cn_a2", "re_a1"}
    assert page.page.total_count == 10
    refund = rows["re_a1"]
    assert refund.kind == "refund" and refund.invoice_id == "in_a1"
    assert refund.date.ToDatetime() == days_ago(1).replace(tzinfo=None)
    assert refund.amount.amount_minor == -600
    assert refund.amount_ex_tax.amount_minor == -500 and refund.tax.amount_minor == -100
    assert refund.counts_toward_revenue and refund.revenue.amount_minor == -500
    note = rows["cn_b1"]
    assert note.kind == "credit_note" and note.amount.currency == "EUR"
    assert note.revenue.amount_minor == -1000
    invoice = rows["in_a1"]
    assert (invoice.amount.amount_minor, invoice.tax.amount_minor,
            invoice.amount_ex_tax.amount_minor) == (1200, 200, 1000)
    assert invoice.hosted_invoice_url.endswith("/in_a1") and invoice.invoice_pdf.endswith(".pdf")
    assert invoice.account_id == "t_alpha" and invoice.status == "paid"
    assert not rows["in_x"].counts_toward_revenue
    dates = [r.date.ToDatetime() for r in page.rows]
    assert dates == sorted(dates, reverse=True)

    reversals = await stub.ListInvoices(pb.ListInvoicesRequest(lens=pb.INVOICE_LENS_REVERSALS))
    assert {r.row_id for r in reversals.rows} == {"cn_b1", "cn_a2", "re_a1"}
    only = await stub.ListInvoices(pb.ListInvoicesRequest(lens=pb.INVOICE_LENS_INVOICES))
    assert only.page.total_count == 7 and {r.kind for r in only.rows} == {"invoice"}
    alpha = await stub.ListInvoices(
        pb.ListInvoicesRequest(account_id="t_alpha", period=period(days_ago(1.5)))
    )
    assert {r.row_id for r in alpha.rows} == {"re_a1", "cn_a2"}
    # paging: stable and complete in both orders
    seen: list[str] = []
    token = ""
    while True:
        p = await stub.ListInvoices(pb.ListInvoicesRequest(
            oldest_first=True, page=common_pb2.PageRequest(page_size=3, page_token=token)))
        seen.extend(r.row_id for r in p.rows)
        token = p.page.next_page_token
        if not token:
            break
    assert seen == [r.row_id for r in reversed(page.rows)]
    # a later refund without credit note on in_c1 gets its own row
    ledger.refund("re_c1", "in_c1", amount=2000, at=days_ago(0, hours=1), currency="JPY")
    after = await stub.ListInvoices(pb.ListInvoicesRequest(lens=pb.INVOICE_LENS_REVERSALS))
    assert after.rows[0].row_id == "re_c1" and after.rows[0].amount.currency == "JPY"
