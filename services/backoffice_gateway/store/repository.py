"""Repository functions over the gateway's tables: the only place that writes them.

Each function takes an open ``Session`` and leaves committing to the caller, so one request
can group its writes (a login attempt and the new session) in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from services.backoffice_gateway.store.tables import (
    ROLES,
    ApiToken,
    AuditEntry,
    LoginAttempt,
    Operator,
    OperatorSession,
)


def now() -> datetime:
    return datetime.now(UTC)


class UnknownOperator(LookupError):
    """No operator with that name."""


class DuplicateOperator(ValueError):
    """The name is taken."""


# --------------------------------------------------------------------------- operators


def create_operator(db: Session, username: str, password_hash: str, role: str) -> Operator:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if operator_by_name(db, username) is not None:
        raise DuplicateOperator(f"operator {username!r} exists")
    stamp = now()
    operator = Operator(
        username=username,
        password_hash=password_hash,
        role=role,
        created_at=stamp,
        updated_at=stamp,
    )
    db.add(operator)
    db.flush()
    return operator


def operator_by_name(db: Session, username: str) -> Operator | None:
    return db.scalars(select(Operator).where(Operator.username == username)).first()


def operator_by_id(db: Session, operator_id: int) -> Operator | None:
    return db.get(Operator, operator_id)


def list_operators(db: Session) -> list[Operator]:
    return list(db.scalars(select(Operator).order_by(Operator.username)))


def count_operators(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(Operator)) or 0)


def require_operator(db: Session, username: str) -> Operator:
    operator = operator_by_name(db, username)
    if operator is None:
        raise UnknownOperator(f"no operator {username!r}")
    return operator


def set_password(db: Session, operator: Operator, password_hash: str) -> None:
    """New password; every session of the operator ends (a reset is often a lock-out)."""
    operator.password_hash = password_hash
    operator.updated_at = now()
    revoke_operator_sessions(db, operator.id)


def disable_operator(db: Session, operator: Operator) -> None:
    """Disabled operators cannot log in; their sessions and tokens stop working at once."""
    stamp = now()
    operator.disabled_at = operator.disabled_at or stamp
    operator.updated_at = stamp
    revoke_operator_sessions(db, operator.id)
    db.execute(
        update(ApiToken)
        .where(ApiToken.operator_id == operator.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=stamp)
    )


def set_utc_offset(db: Session, operator_id: int, minutes: int | None) -> None:
    """The operator's UTC offset, for showing times in their zone beside UTC."""
    db.execute(
        update(Operator)
        .where(Operator.id == operator_id)
        .values(utc_offset_minutes=minutes, updated_at=now())
    )


def enable_operator(db: Session, operator: Operator) -> None:
    operator.disabled_at = None
    operator.updated_at = now()


# --------------------------------------------------------------------------- sessions


def create_session(
    db: Session,
    operator_id: int,
    id_hash: str,
    csrf_token: str,
    lifetime: timedelta,
    ip: str | None,
    user_agent: str | None,
) -> OperatorSession:
    stamp = now()
    row = OperatorSession(
        id_hash=id_hash,
        operator_id=operator_id,
        csrf_token=csrf_token,
        created_at=stamp,
        last_seen_at=stamp,
        expires_at=stamp + lifetime,
        ip=ip,
        user_agent=(user_agent or "")[:512] or None,
    )
    db.add(row)
    db.flush()
    return row


@dataclass(frozen=True)
class ActiveSession:
    session: OperatorSession
    operator: Operator


# The two statements every request runs, built once (building an ORM select costs more than
# running this one on a warm connection).
_ACTIVE_SESSION = (
    select(OperatorSession, Operator)
    .join(Operator, Operator.id == OperatorSession.operator_id)
    .where(
        OperatorSession.id_hash == bindparam("id_hash"),
        OperatorSession.revoked_at.is_(None),
        OperatorSession.expires_at > bindparam("now"),
        Operator.disabled_at.is_(None),
    )
)
_TOKEN_OPERATOR = (
    select(ApiToken, Operator)
    .join(Operator, Operator.id == ApiToken.operator_id)
    .where(
        ApiToken.token_hash == bindparam("token_hash"),
        ApiToken.revoked_at.is_(None),
        Operator.disabled_at.is_(None),
    )
)


def active_session(db: Session, id_hash: str) -> ActiveSession | None:
    """The live session with this id hash and its enabled operator, else None."""
    row = db.execute(_ACTIVE_SESSION, {"id_hash": id_hash, "now": now()}).first()
    if row is None:
        return None
    return ActiveSession(session=row.OperatorSession, operator=row.Operator)


def touch_session(db: Session, session: OperatorSession) -> None:
    """Record activity at most once a minute (no write per request)."""
    stamp = now()
    if stamp - session.last_seen_at > timedelta(minutes=1):
        session.last_seen_at = stamp


def revoke_session(db: Session, id_hash: str) -> None:
    db.execute(
        update(OperatorSession)
        .where(OperatorSession.id_hash == id_hash, OperatorSession.revoked_at.is_(None))
        .values(revoked_at=now())
    )


def revoke_operator_sessions(db: Session, operator_id: int) -> None:
    db.execute(
        update(OperatorSession)
        .where(OperatorSession.operator_id == operator_id, OperatorSession.revoked_at.is_(None))
        .values(revoked_at=now())
    )


# --------------------------------------------------------------------------- API tokens


def create_token(
    db: Session, operator_id: int, name: str, token_hash: str, prefix: str
) -> ApiToken:
    row = ApiToken(
        operator_id=operator_id, name=name, token_hash=token_hash, prefix=prefix, created_at=now()
    )
    db.add(row)
    db.flush()
    return row


def operator_for_token(db: Session, token_hash: str) -> Operator | None:
    """The enabled operator owning this live token; marks the token used."""
    row = db.execute(_TOKEN_OPERATOR, {"token_hash": token_hash}).first()
    if row is None:
        return None
    stamp = now()
    token: ApiToken = row.ApiToken
    if token.last_used_at is None or stamp - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = stamp
    operator: Operator = row.Operator
    return operator


def list_tokens(db: Session, operator_id: int) -> list[ApiToken]:
    return list(
        db.scalars(
            select(ApiToken).where(ApiToken.operator_id == operator_id).order_by(ApiToken.id)
        )
    )


# --------------------------------------------------------------------------- login attempts


def record_login_attempt(db: Session, username: str, ip: str, succeeded: bool) -> None:
    db.add(LoginAttempt(username=username[:128], ip=ip, at=now(), succeeded=succeeded))


@dataclass(frozen=True)
class RecentFailures:
    for_account: int
    for_ip: int


def recent_failures(db: Session, username: str, ip: str, window: timedelta) -> RecentFailures:
    """Failed attempts in the window, since the last success (of that account / that IP)."""
    since = now() - window

    def count(column: Any, value: str) -> int:
        last_success = (
            select(func.max(LoginAttempt.at))
            .where(column == value, LoginAttempt.succeeded.is_(True))
            .scalar_subquery()
        )
        statement = (
            select(func.count())
            .select_from(LoginAttempt)
            .where(
                column == value,
                LoginAttempt.succeeded.is_(False),
                LoginAttempt.at > since,
                LoginAttempt.at > func.coalesce(last_success, since),
            )
        )
        return int(db.scalar(statement) or 0)

    return RecentFailures(
        for_account=count(LoginAttempt.username, username[:128]),
        for_ip=count(LoginAttempt.ip, ip),
    )


# --------------------------------------------------------------------------- audit log


def append_audit(
    db: Session,
    *,
    operator_id: int | None,
    operator: str,
    action: str,
    target: str,
    params: dict[str, Any],
    result: str,
    detail: str,
    ip: str | None,
) -> AuditEntry:
    entry = AuditEntry(
        at=now(),
        operator_id=operator_id,
        operator=operator,
        action=action,
        target=target,
        params=params,
        result=result,
        detail=detail[:500],
        ip=ip,
    )
    db.add(entry)
    db.flush()
    return entry


def list_audit(
    db: Session,
    *,
    limit: int,
    before_id: int | None = None,
    target: str | None = None,
    operator: str | None = None,
    action: str | None = None,
) -> list[AuditEntry]:
    """Newest first, keyset-paged on id."""
    statement = select(AuditEntry)
    if before_id is not None:
        statement = statement.where(AuditEntry.id < before_id)
    if target:
        statement = statement.where(AuditEntry.target == target)
    if operator:
        statement = statement.where(AuditEntry.operator == operator)
    if action:
        statement = statement.where(AuditEntry.action == action)
    return list(db.scalars(statement.order_by(AuditEntry.id.desc()).limit(limit)))
