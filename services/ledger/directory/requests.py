"""Turn DirectoryService requests into validated inputs, or raise InvalidArgument.

Nothing here touches the database, so every rule is unit-testable on its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from billing.ledger.v1 import directory_pb2 as pb

from services.common.paging import BadPageToken, decode_token, encode_token, page_size
from services.common.timeconv import from_micros, micros
from services.ledger.directory.convert import LOGIN_METHODS, LOGIN_OUTCOMES, ROLES, STATUSES
from services.ledger.directory.errors import InvalidArgument
from services.ledger.directory.inputs import (
    LoginInput,
    MembershipInput,
    SessionInput,
    TenantInput,
    UserInput,
    UserListQuery,
    UserSortKey,
)
from services.ledger.directory.validation import (
    bounded_text,
    enum_value,
    normalise_email,
    normalise_ip,
    optional_id,
    require_id,
    required_timestamp,
    timestamp,
)

MAX_SEARCH_LENGTH = 200
_SORTS = {
    pb.USER_SORT_UNSPECIFIED: UserSortKey.EMAIL,
    pb.USER_SORT_EMAIL: UserSortKey.EMAIL,
    pb.USER_SORT_CREATED_AT: UserSortKey.CREATED_AT,
}


def tenant_input(request: pb.UpsertTenantRequest) -> TenantInput:
    name = bounded_text(request.name, "name")
    if not name:
        raise InvalidArgument("name is required")
    return TenantInput(
        tenant_id=require_id(request.tenant_id, "tenant_id"),
        name=name,
        plan_hint=bounded_text(request.plan_hint, "plan_hint") or None,
        created_at=timestamp(request.created_at, request.HasField("created_at"), "created_at"),
        undelete=request.undelete,
    )


def user_input(request: pb.UpsertUserRequest) -> UserInput:
    return UserInput(
        user_id=require_id(request.user_id, "user_id"),
        email=normalise_email(request.email),
        first_name=bounded_text(request.first_name, "first_name"),
        last_name=bounded_text(request.last_name, "last_name"),
        created_at=timestamp(request.created_at, request.HasField("created_at"), "created_at"),
    )


def membership_input(request: pb.UpsertMembershipRequest) -> MembershipInput:
    return MembershipInput(
        user_id=require_id(request.user_id, "user_id"),
        tenant_id=require_id(request.tenant_id, "tenant_id"),
        role=enum_value(request.role, ROLES, "role"),
        status=enum_value(request.status, STATUSES, "status"),
    )


def login_input(request: pb.RecordLoginRequest) -> LoginInput:
    return LoginInput(
        login_id=optional_id(request.login_id, "login_id"),
        user_id=require_id(request.user_id, "user_id"),
        tenant_id=optional_id(request.tenant_id, "tenant_id"),
        at=required_timestamp(request.at, request.HasField("at"), "at"),
        method=enum_value(request.method, LOGIN_METHODS, "method"),
        outcome=enum_value(request.outcome, LOGIN_OUTCOMES, "outcome"),
        ip=normalise_ip(request.ip),
        user_agent=bounded_text(request.user_agent, "user_agent"),
    )


def session_input(request: pb.RecordSessionRequest) -> SessionInput:
    started = required_timestamp(request.started_at, request.HasField("started_at"), "started_at")
    seen = timestamp(request.last_seen_at, request.HasField("last_seen_at"), "last_seen_at")
    if seen is not None and seen < started:
        raise InvalidArgument("last_seen_at is before started_at")
    return SessionInput(
        session_id=require_id(request.session_id, "session_id"),
        user_id=require_id(request.user_id, "user_id"),
        started_at=started,
        last_seen_at=seen or started,
        ip=normalise_ip(request.ip),
        user_agent=bounded_text(request.user_agent, "user_agent"),
    )


def list_query(request: pb.ListUsersRequest) -> UserListQuery:
    """The search, filter, sort and keyset; a token only fits the sort it was made for."""
    if request.sort not in _SORTS:
        raise InvalidArgument("sort is not a known UserSort")
    sort = _SORTS[request.sort]
    try:
        size = page_size(request.page.page_size)
        key = decode_token(request.page.page_token)
    except (BadPageToken, ValueError) as exc:
        raise InvalidArgument(str(exc)) from exc
    return UserListQuery(
        search=bounded_text(request.query, "query", MAX_SEARCH_LENGTH),
        tenant_id=optional_id(request.tenant_id, "tenant_id"),
        sort=sort,
        descending=request.descending,
        page_size=size,
        after=None if key is None else _keyset(key, sort, request.descending),
    )


def _keyset(key: list[object], sort: UserSortKey, descending: bool) -> Any:
    if len(key) != 4 or key[0] != sort.value or key[1] != descending:
        raise InvalidArgument("page_token does not belong to this sort order")
    value, user_id = key[2], key[3]
    if not isinstance(user_id, str):
        raise InvalidArgument("malformed page_token")
    if sort is UserSortKey.CREATED_AT:
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgument("malformed page_token")
        try:
            return from_micros(value), user_id
        except OverflowError as exc:
            raise InvalidArgument("malformed page_token") from exc
    if not isinstance(value, str):
        raise InvalidArgument("malformed page_token")
    return value, user_id


def next_page_token(query: UserListQuery, last: Any) -> str:
    """The token continuing after row ``last`` in the same sort order."""
    value: object = micros(last.created_at) if query.sort is UserSortKey.CREATED_AT else last.email
    return encode_token([query.sort.value, query.descending, value, last.user_id])


def stats_window(request: pb.DirectoryStatsRequest) -> tuple[datetime, datetime, datetime]:
    """(since, until, as_of): both bounds required, since before until, as_of defaults to until."""
    since = required_timestamp(request.since, request.HasField("since"), "since")
    until = required_timestamp(request.until, request.HasField("until"), "until")
    if since >= until:
        raise InvalidArgument("since must be before until")
    as_of = timestamp(request.as_of, request.HasField("as_of"), "as_of")
    return since, until, as_of or until
