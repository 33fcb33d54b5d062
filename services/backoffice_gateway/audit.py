"""The audit log: every admin action (who, what, target, parameters, result) is recorded.

Actions run inside :func:`audited`: the entry is written after the action with its outcome
(``succeeded``, ``failed`` with the error's message, or ``refused`` when the operator lacked
the role), in the gateway's own transaction, so a failing Stripe call still leaves its trace.
Parameters are recorded as given minus anything secret-looking.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.backoffice_gateway.auth.principal import Principal
from services.backoffice_gateway.errors import ApiError
from services.backoffice_gateway.store import Store, repository
from services.backoffice_gateway.views.common import Page

_SECRET = re.compile(r"password|secret|token", re.IGNORECASE)


def clean_params(params: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe parameters with secret-looking fields removed."""
    result: dict[str, Any] = {}
    for key, value in params.items():
        if _SECRET.search(key) or value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif not isinstance(value, str | int | float | bool | list):
            value = str(value)
        result[key] = value
    return result


@dataclass
class Outcome:
    """What the action reports back for the log (a short line, e.g. the Stripe id)."""

    detail: str = ""


@contextmanager
def audited(
    store: Store,
    principal: Principal | None,
    action: str,
    target: str,
    params: dict[str, Any],
    ip: str | None,
) -> Iterator[Outcome]:
    outcome = Outcome()
    result, detail = "succeeded", ""
    try:
        yield outcome
        detail = outcome.detail
    except ApiError as exc:
        result = "refused" if exc.status in (401, 403) else "failed"
        detail = f"{exc.status} {exc.code}: {exc.message}"
        raise
    except BaseException:
        result, detail = "failed", "internal error"
        raise
    finally:
        with store.session() as db:
            repository.append_audit(
                db,
                operator_id=principal.operator_id if principal else None,
                operator=principal.username if principal else "anonymous",
                action=action,
                target=target,
                params=clean_params(params),
                result=result,
                detail=detail,
                ip=ip,
            )
            db.commit()


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    operator: str
    action: str
    target: str
    params: dict[str, Any]
    result: str
    detail: str
    ip: str | None


def read_audit(
    store: Store,
    *,
    page_size: int,
    page_token: str,
    target: str | None = None,
    operator: str | None = None,
    action: str | None = None,
) -> Page[AuditRow]:
    """Newest first; the page token is the last id served."""
    before: int | None = None
    if page_token:
        if not page_token.isdigit() or len(page_token) > 18:
            raise ApiError(400, "invalid_argument", "page_token: malformed")
        before = int(page_token)
    with store.session() as db:
        entries = repository.list_audit(
            db, limit=page_size + 1, before_id=before, target=target, operator=operator,
            action=action,
        )
    more = len(entries) > page_size
    entries = entries[:page_size]
    rows = [
        AuditRow(e.id, e.at, e.operator, e.action, e.target, e.params, e.result, e.detail, e.ip)
        for e in entries
    ]
    return Page(rows, str(rows[-1].id) if more and rows else "", len(rows))
