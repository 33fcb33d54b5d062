"""Who is making the current request: set once per request by ``auth.middleware``."""

from __future__ import annotations

from dataclasses import dataclass

from flask import g


@dataclass(frozen=True)
class Principal:
    operator_id: int
    username: str
    role: str
    via: str  # "session" or "token"
    csrf_token: str | None = None  # sessions only; token requests need none
    session_hash: str | None = None
    utc_offset_minutes: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def current_principal() -> Principal | None:
    principal: Principal | None = g.get("principal")
    return principal
