"""Validated, normalised inputs of the directory's operations (no protobuf, no SQL).

The servicer builds these from requests; the repository trusts them. Stored enum values are
the lower-case names listed in :mod:`services.ledger.directory.tables`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class TenantInput:
    tenant_id: str
    name: str
    plan_hint: str | None  # None keeps the stored hint
    created_at: datetime | None  # None keeps the stored time (now for a new tenant)
    undelete: bool


@dataclass(frozen=True, slots=True)
class UserInput:
    user_id: str
    email: str  # lower-case
    first_name: str
    last_name: str
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class MembershipInput:
    user_id: str
    tenant_id: str
    role: str
    status: str


@dataclass(frozen=True, slots=True)
class LoginInput:
    login_id: str | None
    user_id: str
    tenant_id: str | None
    at: datetime
    method: str
    outcome: str
    ip: str | None
    user_agent: str


@dataclass(frozen=True, slots=True)
class SessionInput:
    session_id: str
    user_id: str
    started_at: datetime
    last_seen_at: datetime
    ip: str | None
    user_agent: str


class UserSortKey(StrEnum):
    EMAIL = "email"
    CREATED_AT = "created_at"


@dataclass(frozen=True, slots=True)
class UserListQuery:
    search: str
    tenant_id: str | None
    sort: UserSortKey
    descending: bool
    page_size: int
    after: tuple[str, str] | tuple[datetime, str] | None  # keyset of the previous page's last row
