"""``LedgerQueriesMixin``: the back-office read RPCs of ``billing.ledger.v1.LedgerService``.

The ledger's servicer inherits it (``class LedgerServicer(LedgerQueriesMixin,
ledger_pb2_grpc.LedgerServiceServicer)``) and provides ``self._engine`` (an AsyncEngine).
Each RPC validates its request first (INVALID_ARGUMENT), then reads in one REPEATABLE READ
transaction so every figure of a response comes from the same snapshot; an unknown account is
NOT_FOUND and an unreachable database UNAVAILABLE.

FX configuration (``PLATFORM_CURRENCY``, ``FX_RATES``, see :mod:`.fx`) is read from the
environment on first use, unless ``self._query_fx`` was set.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import NoReturn, TypeVar

import grpc
from billing.common.v1 import common_pb2
from billing.ledger.v1 import queries_pb2 as pb
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.grpc_errors import run_rpc
from services.common.timeconv import from_timestamp, to_timestamp
from services.ledger.db import is_unavailable
from services.ledger.queries import accounts, dashboard, events, invoices, plans
from services.ledger.queries.convert import (
    account_summary,
    billing_event_row,
    invoice_row,
    money,
    plan_card,
    platform_money,
)
from services.ledger.queries.dashboard_report import dashboard_report
from services.ledger.queries.errors import (
    InvalidArgument,
    QueryError,
    Unavailable,
)
from services.ledger.queries.fx import Blend, Fx
from services.ledger.queries.inputs import (
    InvoiceLens,
    account_list_query,
    account_token,
    event_list_query,
    invoice_list_query,
    recent_limit,
    time_range,
    time_token,
    utc_day,
    window,
)
from services.ledger.queries.lenses import Lens

log = logging.getLogger(__name__)
T = TypeVar("T")

_EVENT_LENSES = {
    pb.EVENT_LENS_UNSPECIFIED: Lens.ALL,
    pb.EVENT_LENS_ALL: Lens.ALL,
    pb.EVENT_LENS_MRR_IMPACT: Lens.MRR_IMPACT,
    pb.EVENT_LENS_SUBSCRIPTION_STATE: Lens.SUBSCRIPTION_STATE,
    pb.EVENT_LENS_OTHER: Lens.OTHER,
}
_INVOICE_LENSES = {
    pb.INVOICE_LENS_UNSPECIFIED: InvoiceLens.ALL,
    pb.INVOICE_LENS_ALL: InvoiceLens.ALL,
    pb.INVOICE_LENS_INVOICES: InvoiceLens.INVOICES,
    pb.INVOICE_LENS_REVERSALS: InvoiceLens.REVERSALS,
}


def _now() -> datetime:
    return datetime.now(UTC)


def _period(period: common_pb2.Period) -> tuple[datetime | None, datetime | None]:
    return (
        from_timestamp(period.start, period.HasField("start")),
        from_timestamp(period.end, period.HasField("end")),
    )


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, text: str) -> NoReturn:
    await context.abort(code, text)
    raise AssertionError("unreachable")  # abort raises


_Row = TypeVar("_Row")


def _page(
    rows: list[_Row], page_size: int, token_of: Callable[[_Row], str]
) -> tuple[list[_Row], str]:
    """Keyset paging: the queries fetch ``page_size + 1`` rows; the extra one only says that
    another page exists, and the next token is the sort key of the last row served."""
    if len(rows) <= page_size:
        return rows, ""
    served = rows[:page_size]
    return served, token_of(served[-1]) if served else ""


class LedgerQueriesMixin:
    """Dashboard, account, billing-event and invoice reads, and the MRR consistency check."""

    _engine: AsyncEngine
    _query_fx: Fx | None = None

    # ------------------------------------------------------------------ plumbing
    def _fx(self) -> Fx:
        if self._query_fx is None:
            self._query_fx = Fx.from_env()
        return self._query_fx

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._engine.connect() as conn:
                await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    yield conn
        except QueryError:
            raise
        except Exception as exc:
            if is_unavailable(exc):
                raise Unavailable("ledger database unavailable, retry later") from exc
            raise

    async def _run(self, context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[T]]) -> T:
        # The suite's one error mapping (services.common.grpc_errors) gives each QueryError
        # its status code.
        return await run_rpc(context, work)

    # ------------------------------------------------------------------ dashboard
    async def GetDashboard(
        self, request: pb.GetDashboardRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDashboardResponse:
        async def work() -> pb.GetDashboardResponse:
            as_of = from_timestamp(request.as_of, request.HasField("as_of"))
            return await dashboard_report(
                self._snapshot,
                window(request.period_days, as_of, _now()),
                self._fx(),
                recent_limit(request.recent_limit),
                trend_only=request.trend_only,
            )

        return await self._run(context, work)

    # ------------------------------------------------------------------ accounts
    async def ListAccounts(
        self, request: pb.ListAccountsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAccountsResponse:
        async def work() -> pb.ListAccountsResponse:
            q = account_list_query(
                search=request.search,
                plans=list(request.plans),
                statuses=list(request.statuses),
                drift_detected=(
                    request.drift_detected if request.HasField("drift_detected") else None
                ),
                unsynced=request.unsynced if request.HasField("unsynced") else None,
                sort_by=request.sort_by,
                descending=request.descending,
                requested_page_size=request.page.page_size,
                page_token=request.page.page_token,
            )
            fx = self._fx()
            async with self._snapshot() as conn:
                rows, total, lower_bound = await accounts.list_accounts(conn, q, fx)
            rows, token = _page(
                rows, q.page_size, lambda last: account_token(q, last.sort_value, last.account_id)
            )
            unconverted = sorted(
                {r.currency for r in rows if r.currency and fx.rate(r.currency) is None}
            )
            return pb.ListAccountsResponse(
                accounts=[account_summary(r, fx) for r in rows],
                page=common_pb2.PageInfo(
                    next_page_token=token,
                    total_count=total,
                    total_count_is_lower_bound=lower_bound,
                ),
                platform_currency=fx.platform,
                unconverted_currencies=unconverted,
            )

        return await self._run(context, work)

    async def GetAccount(
        self, request: pb.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.AccountDetail:
        async def work() -> pb.AccountDetail:
            account_id = request.account_id.strip()
            if not account_id:
                raise InvalidArgument("account_id is required")
            as_of = from_timestamp(request.as_of, request.HasField("as_of")) or _now()
            fx = self._fx()
            async with self._snapshot() as conn:
                detail = await accounts.get_account(conn, account_id, as_of)
            ltv = Blend(fx).extend(detail.revenue_by_currency)
            committed, forward = Blend(fx), Blend(fx)
            for sub in detail.subscriptions:
                committed.add(int(sub.committed_mrr or 0), sub.currency)
                forward.add(int(sub.forward_mrr or 0), sub.currency)
            cards = [plan_card(s) for s in detail.subscriptions]
            primary = next(
                (c for c in cards if c.subscription_id == detail.account.subscription_id), None
            )
            unconverted = ltv.unconverted | committed.unconverted | forward.unconverted
            return pb.AccountDetail(
                account=account_summary(detail.account, fx, with_deleted=True),
                plan=primary,
                subscriptions=cards,
                ltv=platform_money(ltv.total, fx),
                ltv_by_currency=[
                    m for c, a in sorted(ltv.native.items()) if (m := money(a, c)) is not None
                ],
                committed_mrr=platform_money(committed.total, fx),
                forward_mrr=platform_money(forward.total, fx),
                users_total=detail.users_total,
                users_active=detail.users_active,
                platform_currency=fx.platform,
                unconverted_currencies=sorted(unconverted),
                as_of=to_timestamp(as_of),
            )

        return await self._run(context, work)

    # ------------------------------------------------------------------ lists
    async def ListBillingEvents(
        self, request: pb.ListBillingEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListBillingEventsResponse:
        async def work() -> pb.ListBillingEventsResponse:
            lens = _EVENT_LENSES.get(request.lens)
            if lens is None:
                raise InvalidArgument(f"unknown lens {request.lens}")
            q = event_list_query(
                account_id=request.account_id,
                period=time_range(*_period(request.period)),
                lens=lens,
                include_noop=request.include_noop,
                oldest_first=request.oldest_first,
                requested_page_size=request.page.page_size,
                page_token=request.page.page_token,
            )
            async with self._snapshot() as conn:
                customers = None
                if q.account_id is not None:
                    customers, _ = await accounts.account_customers(conn, q.account_id)
                rows, total = await events.list_events(conn, q, customers)
            rows, token = _page(
                rows,
                q.page_size,
                lambda last: time_token(
                    "events", q.oldest_first, last.occurred_at, last.stripe_event_id
                ),
            )
            return pb.ListBillingEventsResponse(
                events=[billing_event_row(r) for r in rows],
                page=common_pb2.PageInfo(next_page_token=token, total_count=total),
            )

        return await self._run(context, work)

    async def ListInvoices(
        self, request: pb.ListInvoicesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListInvoicesResponse:
        async def work() -> pb.ListInvoicesResponse:
            lens = _INVOICE_LENSES.get(request.lens)
            if lens is None:
                raise InvalidArgument(f"unknown lens {request.lens}")
            q = invoice_list_query(
                account_id=request.account_id,
                period=time_range(*_period(request.period)),
                lens=lens,
                oldest_first=request.oldest_first,
                requested_page_size=request.page.page_size,
                page_token=request.page.page_token,
            )
            async with self._snapshot() as conn:
                customers = None
                if q.account_id is not None:
                    customers, _ = await accounts.account_customers(conn, q.account_id)
                rows, total = await invoices.list_invoices(conn, q, customers)
            rows, token = _page(
                rows,
                q.page_size,
                lambda last: time_token("invoices", q.oldest_first, last.row_at, last.row_id),
            )
            return pb.ListInvoicesResponse(
                rows=[invoice_row(r) for r in rows],
                page=common_pb2.PageInfo(next_page_token=token, total_count=total),
            )

        return await self._run(context, work)

    async def ListPlans(
        self, request: pb.ListPlansRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPlansResponse:
        async def work() -> pb.ListPlansResponse:
            async with self._snapshot() as conn:
                found = await plans.list_plans(conn)
            return pb.ListPlansResponse(
                plans=[pb.PlanChoice(plan=p.plan, accounts=p.accounts) for p in found]
            )

        return await self._run(context, work)

    # ------------------------------------------------------------------ consistency
    async def CheckMrrConsistency(
        self, request: pb.CheckMrrConsistencyRequest, context: grpc.aio.ServicerContext
    ) -> pb.MrrConsistencyResponse:
        async def work() -> pb.MrrConsistencyResponse:
            as_of = from_timestamp(request.as_of, request.HasField("as_of")) or _now()
            day = utc_day(as_of)
            fx = self._fx()
            async with self._snapshot() as conn:
                kpi = await dashboard.kpi_mrr(conn)
                trend = await dashboard.mrr_at_end_of(conn, day)
            kpi_blend, trend_blend = Blend(fx).extend(kpi.items()), Blend(fx).extend(trend.items())
            rows = []
            for cur in sorted(set(kpi) | set(trend)):
                k, t = kpi.get(cur, 0), trend.get(cur, 0)
                rows.append(
                    pb.CurrencyMrrConsistency(
                        currency=cur, kpi_minor=k, trend_minor=t, difference_minor=k - t
                    )
                )
            return pb.MrrConsistencyResponse(
                as_of=to_timestamp(as_of),
                trend_date=day.isoformat(),
                kpi_mrr=platform_money(kpi_blend.total, fx),
                trend_mrr=platform_money(trend_blend.total, fx),
                difference=platform_money(kpi_blend.total - trend_blend.total, fx),
                consistent=all(r.difference_minor == 0 for r in rows),
                by_currency=rows,
                unconverted_currencies=sorted(kpi_blend.unconverted | trend_blend.unconverted),
            )

        return await self._run(context, work)


__all__ = ["LedgerQueriesMixin"]
