"""Users of the host application (the ledger's directory): list and detail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing.ledger.v1 import directory_pb2 as d

from services.backoffice_gateway.backends import Backends
from services.backoffice_gateway.views.common import Page, field_time, page_request

SORTS = {"email": d.USER_SORT_EMAIL, "created": d.USER_SORT_CREATED_AT}


def _enum_name(enum: object, value: int, prefix: str) -> str:
    name: str = enum.Name(value)  # type: ignore[attr-defined]
    return name.removeprefix(prefix).lower()


@dataclass(frozen=True)
class UserRow:
    user_id: str
    email: str
    first_name: str
    last_name: str
    created_at: datetime | None
    tenant_names: list[str]
    last_login_at: datetime | None


@dataclass(frozen=True)
class UserFilters:
    query: str = ""
    tenant_id: str = ""
    sort: str = "email"
    descending: bool = False
    page_size: int = 50
    page_token: str = ""


def list_users(backends: Backends, f: UserFilters) -> Page[UserRow]:
    answer = backends.call(
        "ledger",
        backends.directory.ListUsers,
        d.ListUsersRequest(
            query=f.query,
            tenant_id=f.tenant_id,
            sort=SORTS[f.sort],
            descending=f.descending,
            page=page_request(f.page_size, f.page_token),
        ),
    )
    return Page(
        [
            UserRow(
                user_id=s.user.user_id,
                email=s.user.email,
                first_name=s.user.first_name,
                last_name=s.user.last_name,
                created_at=field_time(s.user, "created_at"),
                tenant_names=list(s.tenant_names),
                last_login_at=field_time(s, "last_login_at"),
            )
            for s in answer.users
        ],
        answer.page.next_page_token,
        answer.page.total_count,
    )


@dataclass(frozen=True)
class MembershipView:
    tenant_id: str
    tenant_name: str
    role: str
    status: str
    tenant_deleted_at: datetime | None
    created_at: datetime | None


@dataclass(frozen=True)
class LoginView:
    seq: int
    at: datetime | None
    method: str
    outcome: str
    ip: str
    user_agent: str
    tenant_id: str


@dataclass(frozen=True)
class SessionView:
    session_id: str
    started_at: datetime | None
    last_seen_at: datetime | None
    ip: str
    user_agent: str
    revoked_at: datetime | None
    revocation_reason: str
    active: bool


@dataclass(frozen=True)
class UserDetailView:
    user_id: str
    email: str
    first_name: str
    last_name: str
    created_at: datetime | None
    memberships: list[MembershipView]
    recent_logins: list[LoginView]
    recent_logins_truncated: bool
    sessions: list[SessionView]
    sessions_truncated: bool
    as_of: datetime | None


def user_detail(backends: Backends, user_id: str) -> UserDetailView:
    r = backends.call("ledger", backends.directory.GetUser, d.GetUserRequest(user_id=user_id))
    return UserDetailView(
        user_id=r.user.user_id,
        email=r.user.email,
        first_name=r.user.first_name,
        last_name=r.user.last_name,
        created_at=field_time(r.user, "created_at"),
        memberships=[
            MembershipView(
                tenant_id=m.tenant_id,
                tenant_name=m.tenant_name,
                role=_enum_name(d.MembershipRole, m.role, "MEMBERSHIP_ROLE_"),
                status=_enum_name(d.MembershipStatus, m.status, "MEMBERSHIP_STATUS_"),
                tenant_deleted_at=field_time(m, "tenant_deleted_at"),
                created_at=field_time(m, "created_at"),
            )
            for m in r.memberships
        ],
        recent_logins=[
            LoginView(
                seq=x.seq,
                at=field_time(x, "at"),
                method=_enum_name(d.LoginMethod, x.method, "LOGIN_METHOD_"),
                outcome=_enum_name(d.LoginOutcome, x.outcome, "LOGIN_OUTCOME_"),
                ip=x.ip,
                user_agent=x.user_agent,
                tenant_id=x.tenant_id,
            )
            for x in r.recent_logins
        ],
        recent_logins_truncated=r.recent_logins_truncated,
        sessions=[
            SessionView(
                session_id=s.session_id,
                started_at=field_time(s, "started_at"),
                last_seen_at=field_time(s, "last_seen_at"),
                ip=s.ip,
                user_agent=s.user_agent,
                revoked_at=field_time(s, "revoked_at"),
                revocation_reason=s.revocation_reason,
                active=s.active,
            )
            for s in r.sessions
        ],
        sessions_truncated=r.sessions_truncated,
        as_of=field_time(r, "as_of"),
    )
