"""The plan list: every plan name on a subscription the ledger holds (ended ones too: the
catalogue as Stripe showed it), with how many live accounts are on each now
(``query_accounts.plan``, the value the accounts list's plan filter matches).

Read for the back-office's plan filter, which must offer real plans, not only those with
MRR in the dashboard's distribution."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, literal, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.queries.accounts import live_account
from services.ledger.queries.tables import query_accounts as qa
from services.ledger.queries.tables import subscriptions


@dataclass(frozen=True, slots=True)
class PlanCount:
    plan: str
    accounts: int


async def list_plans(conn: AsyncConnection) -> list[PlanCount]:
    named = union(
        select(subscriptions.c.plan.label("plan")).where(subscriptions.c.plan != ""),
        select(qa.c.plan.label("plan")).where(qa.c.plan != ""),
    ).subquery("named")
    on_plan = (
        select(qa.c.plan, func.count().label("accounts"))
        .where(live_account())
        .group_by(qa.c.plan)
        .subquery("on_plan")
    )
    rows = (
        await conn.execute(
            select(named.c.plan, func.coalesce(on_plan.c.accounts, literal(0)).label("n"))
            .select_from(named.outerjoin(on_plan, and_(on_plan.c.plan == named.c.plan)))
            .order_by(named.c.plan)
        )
    ).all()
    return [PlanCount(row.plan, int(row.n)) for row in rows]


__all__ = ["PlanCount", "list_plans"]
