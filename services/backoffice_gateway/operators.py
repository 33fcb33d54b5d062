"""Operator administration shared by the CLI and ``make run``'s first start."""

from __future__ import annotations

from dataclasses import dataclass

from services.backoffice_gateway.auth.credentials import hash_secret, new_api_token
from services.backoffice_gateway.auth.passwords import generate_password, hash_password
from services.backoffice_gateway.store import Store, repository

FIRST_ADMIN = "admin"


@dataclass(frozen=True)
class Created:
    username: str
    password: str


def create(store: Store, username: str, role: str, password: str | None = None) -> Created:
    password = password or generate_password()
    with store.session() as db:
        repository.create_operator(db, username.strip().lower(), hash_password(password), role)
        db.commit()
    return Created(username.strip().lower(), password)


def bootstrap_admin(store: Store) -> Created | None:
    """On a database without any operator, create ``admin`` with a random password."""
    with store.session() as db:
        if repository.count_operators(db):
            return None
    return create(store, FIRST_ADMIN, "admin")


def reset_password(store: Store, username: str, password: str | None = None) -> Created:
    password = password or generate_password()
    with store.session() as db:
        operator = repository.require_operator(db, username.strip().lower())
        repository.set_password(db, operator, hash_password(password))
        db.commit()
    return Created(operator.username, password)


def disable(store: Store, username: str) -> None:
    with store.session() as db:
        repository.disable_operator(db, repository.require_operator(db, username.lower()))
        db.commit()


def enable(store: Store, username: str) -> None:
    with store.session() as db:
        repository.enable_operator(db, repository.require_operator(db, username.lower()))
        db.commit()


def issue_token(store: Store, username: str, name: str) -> str:
    token = new_api_token()
    with store.session() as db:
        operator = repository.require_operator(db, username.lower())
        if operator.disabled_at is not None:
            raise repository.UnknownOperator(f"operator {username!r} is disabled")
        repository.create_token(db, operator.id, name, hash_secret(token), token[:10])
        db.commit()
    return token


@dataclass(frozen=True)
class OperatorLine:
    username: str
    role: str
    disabled: bool
    created_at: str


def list_all(store: Store) -> list[OperatorLine]:
    with store.session() as db:
        return [
            OperatorLine(o.username, o.role, o.disabled_at is not None, o.created_at.isoformat())
            for o in repository.list_operators(db)
        ]
