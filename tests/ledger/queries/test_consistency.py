"""CheckMrrConsistency, the support tables against a from-scratch rebuild, and UNAVAILABLE."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import psycopg
import pytest
from billing.ledger.v1 import queries_pb2 as pb

from services.common.config import libpq_url
from services.common.db import make_async_engine
from services.ledger.projection import apply_batch
from tests.ledger.integration.ledger_helpers import world_bodies
from tests.ledger.queries import world
from tests.ledger.queries.conftest import Ledger, serve

if TYPE_CHECKING:
    from billing.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub as Stub

pytestmark = pytest.mark.integration

SUPPORT_TABLES = (
    "query_accounts",
    "query_mrr_steps",
    "query_invoice_rows",
    "query_event_daily",
)


async def project_world(url: str, *, shuffle: int | None = None) -> None:
    bodies = [body for _, body in world_bodies(11, 42, 5)]
    if shuffle is not None:
        random.Random(shuffle).shuffle(bodies)
    async with await psycopg.AsyncConnection.connect(libpq_url(url)) as conn:
        for start in range(0, len(bodies), 37):
            async with conn.transaction():
                await apply_batch(conn, bodies[start : start + 37])


def support_snapshot(ledger: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    snap = {
        t: ledger.execute(f"SELECT * FROM ledger.{t} ORDER BY 1, 2, 3")  # noqa: S608 - constants
        for t in SUPPORT_TABLES
    }
    snap["mrr_daily"] = ledger.execute(
        "SELECT * FROM ledger.query_mrr_daily"
        " WHERE committed_delta <> 0 OR forward_delta <> 0 ORDER BY 1, 2"
    )
    snap["revenue_daily"] = ledger.execute(
        "SELECT * FROM ledger.query_revenue_daily WHERE amount <> 0 ORDER BY 1, 2"
    )
    snap["account_mix"] = ledger.execute(
        "SELECT created_day::text, plan, currency, n, committed_mrr"
        " FROM ledger.query_account_mix ORDER BY 1, 2, 3"
    )
    snap["mrr_moves_daily"] = ledger.execute(
        "SELECT * FROM ledger.query_mrr_moves_daily ORDER BY 1, 2, 3, 4, 5, 6, 7"
    )
    return snap


async def test_simulated_history_is_consistent(
    stub: Stub, ledger: Ledger, database_url: str
) -> None:
    await project_world(database_url, shuffle=5)  # out of order, in small batches
    result = await stub.CheckMrrConsistency(pb.CheckMrrConsistencyRequest())
    assert result.consistent, result
    assert result.difference.amount_minor == 0
    assert result.kpi_mrr.amount_minor > 0
    assert {r.currency for r in result.by_currency} == {"USD", "EUR", "JPY"}
    # the triggers' incremental result equals a rebuild from scratch
    incremental = support_snapshot(ledger)
    ledger.execute("SELECT ledger.query_support_rebuild()")
    assert support_snapshot(ledger) == incremental


async def test_detects_a_planted_mismatch(stub: Stub, ledger: Ledger) -> None:
    world.build(ledger)
    ok = await stub.CheckMrrConsistency(pb.CheckMrrConsistencyRequest())
    assert ok.consistent and ok.kpi_mrr.amount_minor == world.COMMITTED_NOW
    ledger.execute(
        "UPDATE ledger.subscriptions SET committed_mrr = committed_mrr + 7"
        " WHERE subscription_id = 'sub_a'"
    )
    bad = await stub.CheckMrrConsistency(pb.CheckMrrConsistencyRequest())
    assert not bad.consistent
    assert bad.difference.amount_minor == 7
    usd = next(r for r in bad.by_currency if r.currency == "USD")
    assert (usd.kpi_minor, usd.trend_minor, usd.difference_minor) == (1507, 1500, 7)


async def test_unavailable_database() -> None:
    engine = make_async_engine("postgresql://nobody@127.0.0.1:1/nothing")
    server, channel, client = await serve(engine)
    try:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: client.GetDashboard(pb.GetDashboardRequest()),
            lambda: client.ListAccounts(pb.ListAccountsRequest()),
            lambda: client.GetAccount(pb.GetAccountRequest(account_id="a")),
            lambda: client.ListBillingEvents(pb.ListBillingEventsRequest()),
            lambda: client.ListInvoices(pb.ListInvoicesRequest()),
            lambda: client.CheckMrrConsistency(pb.CheckMrrConsistencyRequest()),
        ]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await channel.close(grace=None)
        await server.stop(grace=0)
        await engine.dispose()
