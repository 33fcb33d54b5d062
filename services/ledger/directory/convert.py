"""Protobuf <-> stored values: the enum vocabularies and row-to-message conversion."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from billing.ledger.v1 import directory_pb2 as pb

from services.common.timeconv import to_timestamp
from services.ledger.directory.reads import session_is_active

ROLES: dict[int, str] = {
    pb.MEMBERSHIP_ROLE_OWNER: "owner",
    pb.MEMBERSHIP_ROLE_ADMIN: "admin",
    pb.MEMBERSHIP_ROLE_MEMBER: "member",
    pb.MEMBERSHIP_ROLE_VIEWER: "viewer",
}
STATUSES: dict[int, str] = {
    pb.MEMBERSHIP_STATUS_ACTIVE: "active",
    pb.MEMBERSHIP_STATUS_INACTIVE: "inactive",
    pb.MEMBERSHIP_STATUS_PENDING: "pending",
}
LOGIN_METHODS: dict[int, str] = {
    pb.LOGIN_METHOD_PASSWORD: "password",
    pb.LOGIN_METHOD_SSO: "sso",
    pb.LOGIN_METHOD_MAGIC_LINK: "magic_link",
    pb.LOGIN_METHOD_OAUTH: "oauth",
    pb.LOGIN_METHOD_API: "api",
}
LOGIN_OUTCOMES: dict[int, str] = {
    pb.LOGIN_OUTCOME_SUCCESS: "success",
    pb.LOGIN_OUTCOME_FAILURE: "failure",
    pb.LOGIN_OUTCOME_LOCKED: "locked",
}


def _number(names: dict[int, str], stored: str) -> Any:
    for number, name in names.items():
        if name == stored:
            return number
    return 0  # *_UNSPECIFIED: a value written by a newer revision this code does not know


def _ip(value: object) -> str:
    # psycopg reads inet as ipaddress objects; a host address prints without a prefix.
    return "" if value is None else str(value)


def tenant_message(row: Any) -> pb.Tenant:
    return pb.Tenant(
        tenant_id=row.tenant_id,
        name=row.name,
        plan_hint=row.plan_hint or "",
        created_at=to_timestamp(row.created_at),
        updated_at=to_timestamp(row.updated_at),
        deleted_at=to_timestamp(row.deleted_at),
    )


def user_message(row: Any) -> pb.User:
    return pb.User(
        user_id=row.user_id,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        created_at=to_timestamp(row.created_at),
        updated_at=to_timestamp(row.updated_at),
    )


def membership_message(row: Any) -> pb.Membership:
    return pb.Membership(
        user_id=row.user_id,
        tenant_id=row.tenant_id,
        tenant_name=row.tenant_name,
        role=_number(ROLES, row.role),
        status=_number(STATUSES, row.status),
        tenant_deleted_at=to_timestamp(row.tenant_deleted_at),
        created_at=to_timestamp(row.created_at),
        updated_at=to_timestamp(row.updated_at),
    )


def login_message(row: Any) -> pb.Login:
    return pb.Login(
        seq=row.seq,
        login_id=row.login_id or "",
        user_id=row.user_id,
        tenant_id=row.tenant_id or "",
        at=to_timestamp(row.at),
        method=_number(LOGIN_METHODS, row.method),
        outcome=_number(LOGIN_OUTCOMES, row.outcome),
        ip=_ip(row.ip),
        user_agent=row.user_agent,
    )


def session_message(row: Any, as_of: datetime | None = None) -> pb.Session:
    """A session; ``active`` is computed only when an ``as_of`` is given (GetUser)."""
    return pb.Session(
        session_id=row.session_id,
        user_id=row.user_id,
        started_at=to_timestamp(row.started_at),
        last_seen_at=to_timestamp(row.last_seen_at),
        ip=_ip(row.ip),
        user_agent=row.user_agent,
        revoked_at=to_timestamp(row.revoked_at),
        revocation_reason=row.revocation_reason or "",
        active=as_of is not None and session_is_active(row, as_of),
    )


def user_summary_message(row: Any) -> pb.UserSummary:
    return pb.UserSummary(
        user=user_message(row),
        tenant_names=list(row.tenant_names or []),
        last_login_at=to_timestamp(row.last_login_at),
    )
