"""``DirectoryRepository``: each operation in its own transaction, errors already translated.

A façade over :mod:`writes` and :mod:`reads` so the servicer never touches SQL or
connections, and tests (or a future batch importer) can drive the directory without gRPC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger.directory import links, reads, writes
from services.ledger.directory.db import transaction
from services.ledger.directory.inputs import (
    LoginInput,
    MembershipInput,
    SessionInput,
    TenantInput,
    UserInput,
    UserListQuery,
)
from services.ledger.directory.links import LinkInput, LinkListQuery
from services.ledger.directory.reads import DirectoryCounts, UserDetail
from services.ledger.directory.writes import Row


class DirectoryRepository:
    """All reads and writes of the tenant/user directory in the ``ledger`` schema."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def upsert_tenant(self, data: TenantInput) -> Row:
        async with transaction(self._engine) as conn:
            return await writes.upsert_tenant(conn, data)

    async def soft_delete_tenant(self, tenant_id: str, at: datetime | None) -> Row:
        async with transaction(self._engine) as conn:
            return await writes.soft_delete_tenant(conn, tenant_id, at)

    async def upsert_user(self, data: UserInput) -> Row:
        async with transaction(self._engine) as conn:
            return await writes.upsert_user(conn, data)

    async def upsert_membership(self, data: MembershipInput) -> Row:
        async with transaction(self._engine) as conn:
            return await writes.upsert_membership(conn, data)

    async def record_login(self, data: LoginInput) -> tuple[Row, bool]:
        async with transaction(self._engine) as conn:
            return await writes.record_login(conn, data)

    async def record_session(self, data: SessionInput) -> Row:
        async with transaction(self._engine) as conn:
            return await writes.record_session(conn, data)

    async def revoke_session(self, session_id: str, at: datetime | None, reason: str) -> Row:
        async with transaction(self._engine) as conn:
            return await writes.revoke_session(conn, session_id, at, reason)

    async def list_users(self, query: UserListQuery) -> tuple[list[Row], int]:
        async with transaction(self._engine) as conn:
            return await reads.list_users(conn, query)

    async def get_user(self, user_id: str, as_of: datetime) -> UserDetail:
        async with transaction(self._engine) as conn:
            return await reads.get_user(conn, user_id, as_of)

    async def directory_stats(
        self, since: datetime, until: datetime, as_of: datetime
    ) -> DirectoryCounts:
        async with transaction(self._engine) as conn:
            return await reads.directory_stats(conn, since, until, as_of)

    async def link_customer(self, data: LinkInput) -> Row:
        async with transaction(self._engine) as conn:
            return await links.link_customer(conn, data)

    async def unlink_customer(self, stripe_customer_id: str) -> Row:
        async with transaction(self._engine) as conn:
            return await links.unlink_customer(conn, stripe_customer_id)

    async def list_links(self, query: LinkListQuery) -> tuple[list[Row], int]:
        async with transaction(self._engine) as conn:
            return await links.list_links(conn, query)
