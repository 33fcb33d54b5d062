"""DirectoryService writes over gRPC against real PostgreSQL: idempotent upserts, soft
delete, membership, login dedupe, session refresh and revocation."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from billing.ledger.v1 import directory_pb2 as pb

from tests.helpers import query
from tests.ledger.directory.conftest import NOW, add_tenant, add_user, login, ts

if TYPE_CHECKING:
    from tests.ledger.directory.conftest import Stub

pytestmark = pytest.mark.integration


async def test_upsert_tenant_is_idempotent_and_keeps_created_at(directory: Stub):
    first = await add_tenant(
        directory, "t_acme", "Acme", plan_hint="pro", created_at=ts(NOW - timedelta(days=3))
    )
    assert (first.tenant_id, first.name, first.plan_hint) == ("t_acme", "Acme", "pro")
    assert first.created_at.ToDatetime() == (NOW - timedelta(days=3)).replace(tzinfo=None)
    assert not first.HasField("deleted_at")
    renamed = await add_tenant(directory, "t_acme", "Acme Corp")
    assert renamed.name == "Acme Corp"
    assert renamed.plan_hint == "pro"  # an empty hint keeps the known one
    assert renamed.created_at == first.created_at
    again = await add_tenant(directory, "t_acme", "Acme Corp")
    assert (again.name, again.created_at) == (renamed.name, renamed.created_at)


async def test_soft_delete_keeps_first_time_and_upsert_does_not_undelete(
    directory: Stub, database_url: str
):
    await add_tenant(directory, "t_gone", "Gone Ltd")
    deleted = await directory.SoftDeleteTenant(
        pb.SoftDeleteTenantRequest(tenant_id="t_gone", deleted_at=ts(NOW))
    )
    assert deleted.deleted_at.ToDatetime() == NOW.replace(tzinfo=None)
    repeated = await directory.SoftDeleteTenant(
        pb.SoftDeleteTenantRequest(tenant_id="t_gone", deleted_at=ts(NOW + timedelta(days=1)))
    )
    assert repeated.deleted_at == deleted.deleted_at
    still = await add_tenant(directory, "t_gone", "Gone Limited")
    assert still.name == "Gone Limited"
    assert still.deleted_at == deleted.deleted_at
    restored = await add_tenant(directory, "t_gone", "Gone Limited", undelete=True)
    assert not restored.HasField("deleted_at")
    assert query(database_url, "SELECT deleted_at FROM ledger.tenants") == [(None,)]
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await directory.SoftDeleteTenant(pb.SoftDeleteTenantRequest(tenant_id="t_never"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_upsert_user_normalises_email_and_refuses_a_taken_one(
    directory: Stub, database_url: str
):
    user = await add_user(directory, "u_ada", "  Ada@Example.COM", "Ada", "Lovelace")
    assert user.email == "ada@example.com"
    updated = await add_user(directory, "u_ada", "ADA.L@example.com", "Ada", "King")
    assert (updated.email, updated.last_name) == ("ada.l@example.com", "King")
    assert query(database_url, "SELECT user_id, email FROM ledger.users") == [
        ("u_ada", "ada.l@example.com")
    ]
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await add_user(directory, "u_other", "Ada.L@Example.com")
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_membership_upsert_and_unknown_references(directory: Stub):
    await add_tenant(directory, "t1", "Tenant One")
    await add_user(directory, "u1", "one@example.com")
    request = pb.UpsertMembershipRequest(
        user_id="u1",
        tenant_id="t1",
        role=pb.MEMBERSHIP_ROLE_OWNER,
        status=pb.MEMBERSHIP_STATUS_PENDING,
    )
    created = await directory.UpsertMembership(request)
    assert (created.tenant_name, created.role, created.status) == (
        "Tenant One",
        pb.MEMBERSHIP_ROLE_OWNER,
        pb.MEMBERSHIP_STATUS_PENDING,
    )
    request.status = pb.MEMBERSHIP_STATUS_ACTIVE
    request.role = pb.MEMBERSHIP_ROLE_VIEWER
    changed = await directory.UpsertMembership(request)
    assert (changed.role, changed.status) == (
        pb.MEMBERSHIP_ROLE_VIEWER,
        pb.MEMBERSHIP_STATUS_ACTIVE,
    )
    assert changed.created_at == created.created_at
    for user_id, tenant_id in [("u_missing", "t1"), ("u1", "t_missing")]:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await directory.UpsertMembership(
                pb.UpsertMembershipRequest(
                    user_id=user_id,
                    tenant_id=tenant_id,
                    role=pb.MEMBERSHIP_ROLE_MEMBER,
                    status=pb.MEMBERSHIP_STATUS_ACTIVE,
                )
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_record_login_dedupes_on_login_id_and_stores_inet(directory: Stub, database_url: str):
    await add_tenant(directory, "t1", "Tenant One")
    await add_user(directory, "u1", "one@example.com", tenants=("t1",))
    first = await login(directory, "u1", NOW, tenant_id="t1", login_id="login-1")
    assert not first.duplicate
    assert (first.login.login_id, first.login.tenant_id, first.login.ip) == (
        "login-1",
        "t1",
        "203.0.113.7",
    )
    again = await login(directory, "u1", NOW + timedelta(minutes=5), login_id="login-1")
    assert again.duplicate
    assert again.login == first.login
    anonymous = [await login(directory, "u1", NOW) for _ in range(2)]
    assert not any(r.duplicate for r in anonymous)
    assert anonymous[0].login.seq != anonymous[1].login.seq
    v6 = await directory.RecordLogin(
        pb.RecordLoginRequest(
            user_id="u1",
            at=ts(NOW),
            method=pb.LOGIN_METHOD_API,
            outcome=pb.LOGIN_OUTCOME_FAILURE,
            ip="2001:DB8::0:1",
        )
    )
    assert v6.login.ip == "2001:db8::1"
    rows = query(
        database_url,
        "SELECT count(*), count(DISTINCT login_id), pg_typeof(min(ip))::text FROM ledger.logins",
    )
    assert rows == [(4, 1, "inet")]
    with pytest.raises(grpc.aio.AioRpcError) as unknown_user:
        await login(directory, "u_missing", NOW)
    assert unknown_user.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as unknown_tenant:
        await login(directory, "u1", NOW, tenant_id="t_missing")
    assert unknown_tenant.value.code() == grpc.StatusCode.NOT_FOUND


async def test_logins_are_append_only_in_the_database(directory: Stub, database_url: str):
    import psycopg

    await add_user(directory, "u1", "one@example.com")
    await login(directory, "u1", NOW)
    for statement in ["UPDATE ledger.logins SET user_agent = 'x'", "DELETE FROM ledger.logins"]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            query(database_url, statement)
    assert query(database_url, "SELECT user_agent FROM ledger.logins") == [("pytest",)]


async def test_session_refresh_moves_forward_only_and_revocation_is_write_once(
    directory: Stub,
):
    await add_user(directory, "u1", "one@example.com")
    await add_user(directory, "u2", "two@example.com")
    started = await directory.RecordSession(
        pb.RecordSessionRequest(
            session_id="s1", user_id="u1", started_at=ts(NOW), ip="198.51.100.1", user_agent="A"
        )
    )
    assert started.last_seen_at == started.started_at
    later = NOW + timedelta(hours=2)
    refreshed = await directory.RecordSession(
        pb.RecordSessionRequest(
            session_id="s1",
            user_id="u1",
            started_at=ts(NOW),
            last_seen_at=ts(later),
            ip="198.51.100.2",
            user_agent="B",
        )
    )
    assert (refreshed.last_seen_at, refreshed.ip, refreshed.user_agent) == (
        ts(later),
        "198.51.100.2",
        "B",
    )
    stale = await directory.RecordSession(
        pb.RecordSessionRequest(
            session_id="s1",
            user_id="u1",
            started_at=ts(NOW),
            last_seen_at=ts(NOW + timedelta(hours=1)),
            ip="198.51.100.9",
            user_agent="stale",
        )
    )
    assert (stale.last_seen_at, stale.ip, stale.user_agent) == (ts(later), "198.51.100.2", "B")
    with pytest.raises(grpc.aio.AioRpcError) as stolen:
        await directory.RecordSession(
            pb.RecordSessionRequest(session_id="s1", user_id="u2", started_at=ts(NOW))
        )
    assert stolen.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    revoked = await directory.RevokeSession(
        pb.RevokeSessionRequest(session_id="s1", revoked_at=ts(later), reason="logout")
    )
    assert (revoked.revoked_at, revoked.revocation_reason) == (ts(later), "logout")
    again = await directory.RevokeSession(
        pb.RevokeSessionRequest(
            session_id="s1", revoked_at=ts(later + timedelta(hours=1)), reason="admin"
        )
    )
    assert (again.revoked_at, again.revocation_reason) == (ts(later), "logout")
    seen_after = await directory.RecordSession(
        pb.RecordSessionRequest(
            session_id="s1",
            user_id="u1",
            started_at=ts(NOW),
            last_seen_at=ts(later + timedelta(hours=3)),
        )
    )
    assert seen_after.revoked_at == ts(later)  # a refresh never un-revokes
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await directory.RevokeSession(pb.RevokeSessionRequest(session_id="s_missing"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
