"""A LedgerService serving only the query mixin, on a free port, over a fresh database.

Ledger state is built by inserting rows into the ledger tables directly (``Ledger`` below),
exactly the columns the projection writes; the triggers of migration 0004 derive the query
tables from them as they would from the projection. One test projects a simulator world
through the real projection instead (test_consistency).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import grpc
import psycopg
import pytest
from billing.ledger.v1 import ledger_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from psycopg import sql
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.config import libpq_url
from services.common.db import make_async_engine
from services.common.grpc_client import aio_channel
from services.common.grpc_server import GrpcServer
from services.ledger.queries import LedgerQueriesMixin
from services.ledger.queries.fx import Fx

if TYPE_CHECKING:
    from billing.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub as Stub

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
FX = Fx("USD", {"EUR": Decimal("1.08"), "JPY": Decimal("0.0067")})


#: Functions whose signature a later migration changed (0028 gave both a ``p_since``):
#: CREATE OR REPLACE of an older text would add an overload beside them, and a call with the
#: older arguments would then be ambiguous.
_RESIGNED = {
    "query_refresh_mrr": "ledger.query_refresh_mrr(text[], timestamp with time zone)",
    "query_touch": "ledger.query_touch(text, text[], timestamp with time zone)",
}


def put_back_functions(conn: psycopg.Connection[Any], text: str) -> None:
    """Execute an older migration's frozen function text (a test's oracle, inside a
    transaction the caller rolls back), first dropping the newer signatures it replaces."""
    for name in sorted(set(re.findall(r"FUNCTION ledger\.(\w+)\(", text)) & set(_RESIGNED)):
        conn.execute(f"DROP FUNCTION IF EXISTS {_RESIGNED[name]}")  # type: ignore[arg-type]
    conn.execute(text)  # type: ignore[arg-type]


def ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def days_ago(days: float, *, hours: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours)


class QueryServicer(LedgerQueriesMixin, ledger_pb2_grpc.LedgerServiceServicer):
    """The mixin alone, as the ledger's servicer inherits it."""

    def __init__(self, engine: AsyncEngine, fx: Fx = FX) -> None:
        self._engine = engine
        self._query_fx = fx


async def serve(engine: AsyncEngine) -> tuple[GrpcServer, grpc.aio.Channel, Stub]:
    server = GrpcServer(0, "127.0.0.1")
    server.add(
        ledger_pb2_grpc.add_LedgerServiceServicer_to_server,  # type: ignore[arg-type]
        QueryServicer(engine),  # type: ignore[abstract]
        ["billing.ledger.v1.LedgerService"],
    )
    await server.start()
    channel = aio_channel(f"127.0.0.1:{server.port}")
    return server, channel, ledger_pb2_grpc.LedgerServiceStub(channel)


@pytest.fixture
async def stub(database_url: str) -> AsyncIterator[Stub]:
    engine = make_async_engine(database_url)
    server, channel, client = await serve(engine)
    try:
        yield client
    finally:
        await channel.close(grace=None)
        await server.stop(grace=0)
        await engine.dispose()


_seq = itertools.count(1)


@dataclass
class Ledger:
    """Inserts ledger rows the way the projection would leave them (autocommit)."""

    url: str

    def _insert(self, table: str, values: dict[str, Any]) -> None:
        values.setdefault("state_event_created", NOW - timedelta(days=400))
        values.setdefault("state_event_id", f"evt_state_{next(_seq):06d}")
        self._write(table, values)

    def _write(self, table: str, values: dict[str, Any]) -> None:
        cols = list(values)
        statement = sql.SQL("INSERT INTO ledger.{} ({}) VALUES ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(c) for c in cols),
            sql.SQL(", ").join(sql.Placeholder() for _ in cols),
        )
        with psycopg.connect(libpq_url(self.url), autocommit=True) as conn:
            conn.execute(statement, [values[c] for c in cols])

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(libpq_url(self.url), autocommit=True) as conn:
            cur = conn.execute(statement, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def tenant(self, tenant_id: str, name: str, created_at: datetime, **extra: Any) -> None:
        self._write("tenants", {"tenant_id": tenant_id, "name": name, "created_at": created_at,
                                **extra})

    def customer(
        self,
        customer_id: str,
        *,
        name: str,
        created_at: datetime,
        tenant_id: str | None = None,
        currency: str = "USD",
        **extra: Any,
    ) -> None:
        self._insert(
            "accounts",
            {
                "stripe_customer_id": customer_id,
                "tenant_id": tenant_id,
                "name": name,
                "email": f"{customer_id}@example.com",
                "currency": currency,
                "stripe_created_at": created_at,
                **extra,
            },
        )

    def subscription(
        self,
        subscription_id: str,
        customer_id: str,
        *,
        plan: str,
        mrr: int,
        currency: str = "USD",
        status: str = "active",
        forward: int | None = None,
        period_end: datetime | None = None,
        **extra: Any,
    ) -> None:
        self._insert(
            "subscriptions",
            {
                "subscription_id": subscription_id,
                "stripe_customer_id": customer_id,
                "status": status,
                "plan": plan,
                "unit_amount": mrr,
                "quantity": 1,
                "interval": "month",
                "interval_count": 1,
                "currency": currency,
                "current_period_start": NOW - timedelta(days=10),
                "current_period_end": period_end or NOW + timedelta(days=20),
                "committed_mrr": mrr,
                "forward_mrr": mrr if forward is None else forward,
                **extra,
            },
        )

    def event(
        self,
        event_type: str,
        at: datetime,
        *,
        customer_id: str | None = None,
        subscription_id: str | None = None,
        committed: int | None = None,
        forward: int | None = None,
        delta: int | None = None,
        currency: str | None = "USD",
        event_id: str | None = None,
        **extra: Any,
    ) -> str:
        event_id = event_id or f"evt_{next(_seq):06d}"
        self._write(
            "billing_events",
            {
                "stripe_event_id": event_id,
                "stripe_event_type": "customer.subscription.updated",
                "event_type": event_type,
                "stripe_customer_id": customer_id,
                "subscription_id": subscription_id,
                "committed_mrr": committed,
                "forward_mrr": committed if forward is None else forward,
                "amount_delta": delta,
                "currency": currency,
                "occurred_at": at,
                **extra,
            },
        )
        return event_id

    def invoice(
        self,
        invoice_id: str,
        customer_id: str,
        *,
        total: int,
        tax: int = 0,
        created: datetime,
        paid_at: datetime | None = None,
        currency: str = "USD",
        **extra: Any,
    ) -> None:
        self._insert(
            "payments",
            {
                "invoice_id": invoice_id,
                "stripe_customer_id": customer_id,
                "number": f"N-{invoice_id}",
                "status": "paid" if paid_at else "open",
                "currency": currency,
                "total": total,
                "subtotal": total - tax,
                "tax": tax,
                "amount_ex_tax": total - tax,
                "amount_paid": total if paid_at else 0,
                "amount_due": total,
                "invoice_created": created,
                "paid_at": paid_at,
                "payment_intent_id": f"pi_{invoice_id}",
                "invoice_charge_id": f"ch_{invoice_id}",
                "hosted_invoice_url": f"https://pay.example/{invoice_id}",
                "invoice_pdf": f"https://pay.example/{invoice_id}.pdf",
                **extra,
            },
        )

    def refund(
        self, refund_id: str, invoice_id: str, *, amount: int, at: datetime,
        currency: str = "USD", status: str = "succeeded",
    ) -> None:
        self._insert(
            "refunds",
            {
                "refund_id": refund_id,
                "charge_id": f"ch_{invoice_id}",
                "payment_intent_id": f"pi_{invoice_id}",
                "amount": amount,
                "currency": currency,
                "status": status,
                "refund_created": at,
            },
        )

    def credit_note(
        self, credit_note_id: str, invoice_id: str, *, total: int, at: datetime,
        refund_ids: tuple[str, ...] = (), currency: str = "USD", status: str = "issued",
    ) -> None:
        self._insert(
            "credit_notes",
            {
                "credit_note_id": credit_note_id,
                "invoice_id": invoice_id,
                "amount": total,
                "total": total,
                "currency": currency,
                "status": status,
                "refund_ids": list(refund_ids),
                "credit_note_created": at,
            },
        )


@pytest.fixture
def ledger(database_url: str) -> Ledger:
    return Ledger(database_url)
