"""Status codes over gRPC: INVALID_ARGUMENT for bad input, NOT_FOUND for unknown entities,
UNAVAILABLE when the database cannot be reached."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from billing.common.v1 import common_pb2
from billing.ledger.v1 import directory_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.db import make_async_engine
from services.devstack.embedded import free_port
from tests.ledger.directory.conftest import NOW, add_tenant, add_user, serve, ts

if TYPE_CHECKING:
    from tests.ledger.directory.conftest import Stub

pytestmark = pytest.mark.integration


async def code_of(call: Awaitable[Any]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    return failure.value.code()


async def test_invalid_arguments(directory: Stub, database_url: str):
    await add_tenant(directory, "t1", "Tenant")
    await add_user(directory, "u1", "one@example.com")
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    calls: list[Awaitable[Any]] = [
        directory.UpsertTenant(pb.UpsertTenantRequest(name="No id")),
        directory.UpsertTenant(pb.UpsertTenantRequest(tenant_id="t2")),
        directory.SoftDeleteTenant(pb.SoftDeleteTenantRequest()),
        directory.UpsertUser(pb.UpsertUserRequest(email="x@example.com")),
        directory.UpsertUser(pb.UpsertUserRequest(user_id="u2", email="not-an-email")),
        directory.UpsertUser(pb.UpsertUserRequest(user_id="u2")),
        directory.UpsertMembership(
            pb.UpsertMembershipRequest(
                user_id="u1", tenant_id="t1", status=pb.MEMBERSHIP_STATUS_ACTIVE
            )
        ),
        directory.UpsertMembership(
            pb.UpsertMembershipRequest(
                user_id="u1",
                tenant_id="t1",
                role=pb.MEMBERSHIP_ROLE_ADMIN,
                status=7,  # type: ignore[arg-type]
            )
        ),
        directory.RecordLogin(
            pb.RecordLoginRequest(
                user_id="u1",
                at=ts(NOW),
                method=pb.LOGIN_METHOD_SSO,
                outcome=pb.LOGIN_OUTCOME_SUCCESS,
                ip="300.1.1.1",
            )
        ),
        directory.RecordLogin(
            pb.RecordLoginRequest(user_id="u1", at=ts(NOW), method=pb.LOGIN_METHOD_SSO)
        ),
        directory.RecordSession(pb.RecordSessionRequest(user_id="u1", started_at=ts(NOW))),
        directory.RecordSession(pb.RecordSessionRequest(session_id="s", user_id="u1")),
        directory.RevokeSession(pb.RevokeSessionRequest()),
        directory.GetUser(pb.GetUserRequest()),
        directory.ListUsers(
            pb.ListUsersRequest(page=common_pb2.PageRequest(page_token="%%%not-a-token"))
        ),
        directory.DirectoryStats(pb.DirectoryStatsRequest(since=ts(NOW))),
        directory.UpsertTenant(
            pb.UpsertTenantRequest(
                tenant_id="t3", name="Far", created_at=Timestamp(seconds=-100_000_000_000)
            )
        ),
        directory.UpsertTenant(pb.UpsertTenantRequest(tenant_id="t3", name="Nul \x00 byte")),
    ]
    for call in calls:
        assert await code_of(call) == invalid
    # Nothing half-written by the refused calls.
    listed = await directory.ListUsers(pb.ListUsersRequest())
    assert [s.user.user_id for s in listed.users] == ["u1"]


async def test_not_found(directory: Stub):
    assert await code_of(directory.GetUser(pb.GetUserRequest(user_id="u_missing"))) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert (
        await code_of(directory.RevokeSession(pb.RevokeSessionRequest(session_id="s_missing")))
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        await code_of(
            directory.RecordSession(
                pb.RecordSessionRequest(session_id="s", user_id="u_missing", started_at=ts(NOW))
            )
        )
        == grpc.StatusCode.NOT_FOUND
    )


async def test_unavailable_when_the_database_is_down():
    # Nothing listens on this port: every call must fail fast with a retryable code.
    engine = make_async_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    server, channel, stub = await serve(engine)
    try:
        calls: list[Awaitable[Any]] = [
            stub.UpsertTenant(pb.UpsertTenantRequest(tenant_id="t", name="T")),
            stub.GetUser(pb.GetUserRequest(user_id="u")),
            stub.ListUsers(pb.ListUsersRequest()),
            stub.DirectoryStats(
                pb.DirectoryStatsRequest(since=ts(NOW), until=ts(NOW.replace(year=2026)))
            ),
        ]
        for call in calls:
            assert await code_of(call) == grpc.StatusCode.UNAVAILABLE
    finally:
        await channel.close(grace=None)
        await server.stop(grace=0)
        await engine.dispose()
