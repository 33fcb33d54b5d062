"""A DirectoryService on a free port, against a fresh migrated PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import grpc
import pytest
from billing.ledger.v1 import directory_pb2 as pb
from billing.ledger.v1 import directory_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import make_async_engine
from services.common.grpc_client import aio_channel
from services.common.grpc_server import GrpcServer
from services.ledger.directory import register

if TYPE_CHECKING:
    # Only in the generated .pyi: the stub's type when built on a grpc.aio channel.
    from billing.ledger.v1.directory_pb2_grpc import DirectoryServiceAsyncStub as Stub

# A fixed "now" keeps the 30-day and 24-hour windows deterministic.
NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)


def ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


async def serve(engine: AsyncEngine) -> tuple[GrpcServer, grpc.aio.Channel, Stub]:
    server = GrpcServer(0, "127.0.0.1")
    register(server, engine)
    await server.start()
    channel = aio_channel(f"127.0.0.1:{server.port}")
    return server, channel, directory_pb2_grpc.DirectoryServiceStub(channel)


@pytest.fixture
async def directory(database_url: str) -> AsyncIterator[Stub]:
    engine = make_async_engine(database_url)
    server, channel, stub = await serve(engine)
    try:
        yield stub
    finally:
        await channel.close(grace=None)
        await server.stop(grace=0)
        await engine.dispose()


async def add_tenant(stub: Stub, tenant_id: str, name: str, **fields: object) -> pb.Tenant:
    return await stub.UpsertTenant(
        pb.UpsertTenantRequest(tenant_id=tenant_id, name=name, **fields)  # type: ignore[arg-type]
    )


async def add_user(
    stub: Stub,
    user_id: str,
    email: str,
    first: str = "",
    last: str = "",
    created_at: datetime = NOW,
    tenants: tuple[str, ...] = (),
) -> pb.User:
    user = await stub.UpsertUser(
        pb.UpsertUserRequest(
            user_id=user_id,
            email=email,
            first_name=first,
            last_name=last,
            created_at=ts(created_at),
        )
    )
    for tenant_id in tenants:
        await stub.UpsertMembership(
            pb.UpsertMembershipRequest(
                user_id=user_id,
                tenant_id=tenant_id,
                role=pb.MEMBERSHIP_ROLE_MEMBER,
                status=pb.MEMBERSHIP_STATUS_ACTIVE,
            )
        )
    return user


async def login(
    stub: Stub,
    user_id: str,
    at: datetime,
    *,
    outcome: int = pb.LOGIN_OUTCOME_SUCCESS,
    tenant_id: str = "",
    login_id: str = "",
) -> pb.RecordLoginResponse:
    return await stub.RecordLogin(
        pb.RecordLoginRequest(
            login_id=login_id,
            user_id=user_id,
            tenant_id=tenant_id,
            at=ts(at),
            method=pb.LOGIN_METHOD_PASSWORD,
            outcome=outcome,  # type: ignore[arg-type]
            ip="203.0.113.7",
            user_agent="pytest",
        )
    )
