"""``billing.ledger.v1.DirectoryService`` over gRPC, and ``register`` to wire it in one call."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from billing.common.v1 import common_pb2
from billing.ledger.v1 import directory_pb2 as pb
from billing.ledger.v1 import directory_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.grpc_errors import run_rpc
from services.common.grpc_server import GrpcServer
from services.common.timeconv import to_timestamp
from services.ledger.directory import convert, links, requests
from services.ledger.directory.repository import DirectoryRepository
from services.ledger.directory.validation import bounded_text, require_id, timestamp

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DirectoryService"].full_name
# The methods a read token may call (see services.common.grpc_auth); the rest need admin.
READ_ONLY_METHODS = frozenset({"ListUsers", "GetUser", "DirectoryStats", "ListCustomerLinks"})

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


class DirectoryServicer(directory_pb2_grpc.DirectoryServiceServicer):
    """Validates each request, runs it through the repository, maps errors to status codes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._repo = DirectoryRepository(engine)

    async def _run(self, context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[T]]) -> T:
        # The suite's one error mapping (services.common.grpc_errors) gives each
        # DirectoryError its status code.
        return await run_rpc(context, work)

    async def UpsertTenant(
        self, request: pb.UpsertTenantRequest, context: grpc.aio.ServicerContext
    ) -> pb.Tenant:
        async def work() -> pb.Tenant:
            row = await self._repo.upsert_tenant(requests.tenant_input(request))
            return convert.tenant_message(row)

        return await self._run(context, work)

    async def SoftDeleteTenant(
        self, request: pb.SoftDeleteTenantRequest, context: grpc.aio.ServicerContext
    ) -> pb.Tenant:
        async def work() -> pb.Tenant:
            tenant_id = require_id(request.tenant_id, "tenant_id")
            at = timestamp(request.deleted_at, request.HasField("deleted_at"), "deleted_at")
            return convert.tenant_message(await self._repo.soft_delete_tenant(tenant_id, at))

        return await self._run(context, work)

    async def UpsertUser(
        self, request: pb.UpsertUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.User:
        async def work() -> pb.User:
            return convert.user_message(await self._repo.upsert_user(requests.user_input(request)))

        return await self._run(context, work)

    async def UpsertMembership(
        self, request: pb.UpsertMembershipRequest, context: grpc.aio.ServicerContext
    ) -> pb.Membership:
        async def work() -> pb.Membership:
            row = await self._repo.upsert_membership(requests.membership_input(request))
            return convert.membership_message(row)

        return await self._run(context, work)

    async def RecordLogin(
        self, request: pb.RecordLoginRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordLoginResponse:
        async def work() -> pb.RecordLoginResponse:
            row, duplicate = await self._repo.record_login(requests.login_input(request))
            return pb.RecordLoginResponse(login=convert.login_message(row), duplicate=duplicate)

        return await self._run(context, work)

    async def RecordSession(
        self, request: pb.RecordSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Session:
        async def work() -> pb.Session:
            row = await self._repo.record_session(requests.session_input(request))
            return convert.session_message(row)

        return await self._run(context, work)

    async def RevokeSession(
        self, request: pb.RevokeSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Session:
        async def work() -> pb.Session:
            session_id = require_id(request.session_id, "session_id")
            at = timestamp(request.revoked_at, request.HasField("revoked_at"), "revoked_at")
            reason = bounded_text(request.reason, "reason")
            row = await self._repo.revoke_session(session_id, at, reason)
            return convert.session_message(row)

        return await self._run(context, work)

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListUsersResponse:
        async def work() -> pb.ListUsersResponse:
            query = requests.list_query(request)
            rows, total = await self._repo.list_users(query)
            more = len(rows) > query.page_size
            rows = rows[: query.page_size]
            token = requests.next_page_token(query, rows[-1]) if more and rows else ""
            return pb.ListUsersResponse(
                users=[convert.user_summary_message(row) for row in rows],
                page=common_pb2.PageInfo(next_page_token=token, total_count=total),
            )

        return await self._run(context, work)

    async def GetUser(
        self, request: pb.GetUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUserResponse:
        async def work() -> pb.GetUserResponse:
            user_id = require_id(request.user_id, "user_id")
            as_of = timestamp(request.as_of, request.HasField("as_of"), "as_of") or _now()
            detail = await self._repo.get_user(user_id, as_of)
            return pb.GetUserResponse(
                user=convert.user_message(detail.user),
                memberships=[convert.membership_message(row) for row in detail.memberships],
                recent_logins=[convert.login_message(row) for row in detail.recent_logins],
                recent_logins_truncated=detail.recent_logins_truncated,
                sessions=[convert.session_message(row, as_of) for row in detail.sessions],
                sessions_truncated=detail.sessions_truncated,
                as_of=to_timestamp(as_of),
            )

        return await self._run(context, work)

    async def DirectoryStats(
        self, request: pb.DirectoryStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.DirectoryStatsResponse:
        async def work() -> pb.DirectoryStatsResponse:
            since, until, as_of = requests.stats_window(request)
            counts = await self._repo.directory_stats(since, until, as_of)
            return pb.DirectoryStatsResponse(
                active_users=counts.active_users,
                active_sessions=counts.active_sessions,
                total_users=counts.total_users,
                total_tenants=counts.total_tenants,
            )

        return await self._run(context, work)

    async def LinkStripeCustomer(
        self, request: pb.LinkStripeCustomerRequest, context: grpc.aio.ServicerContext
    ) -> pb.CustomerLink:
        async def work() -> pb.CustomerLink:
            row = await self._repo.link_customer(links.link_input(request))
            return links.link_message(row)

        return await self._run(context, work)

    async def UnlinkStripeCustomer(
        self, request: pb.UnlinkStripeCustomerRequest, context: grpc.aio.ServicerContext
    ) -> pb.CustomerLink:
        async def work() -> pb.CustomerLink:
            customer = require_id(request.stripe_customer_id, "stripe_customer_id")
            return links.link_message(await self._repo.unlink_customer(customer))

        return await self._run(context, work)

    async def ListCustomerLinks(
        self, request: pb.ListCustomerLinksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCustomerLinksResponse:
        async def work() -> pb.ListCustomerLinksResponse:
            query = links.link_list_query(request)
            rows, total = await self._repo.list_links(query)
            more = len(rows) > query.page_size
            rows = rows[: query.page_size]
            token = links.next_page_token(rows[-1]) if more and rows else ""
            return pb.ListCustomerLinksResponse(
                links=[links.link_message(row) for row in rows],
                page=common_pb2.PageInfo(next_page_token=token, total_count=total),
            )

        return await self._run(context, work)


def register(grpc_server: GrpcServer, engine: AsyncEngine) -> DirectoryServicer:
    """Add the DirectoryService (and its name, for health and reflection) to ``grpc_server``.

    Call before ``grpc_server.start()``; returns the servicer for callers that want it.
    """
    servicer = DirectoryServicer(engine)
    grpc_server.add(
        directory_pb2_grpc.add_DirectoryServiceServicer_to_server,  # type: ignore[arg-type]
        servicer,
        [SERVICE_NAME],
        read_only_methods=READ_ONLY_METHODS,
    )
    return servicer
