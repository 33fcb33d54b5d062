"""``login_required`` and ``admin_required`` for views of every blueprint.

A missing login is 401 JSON under /api and a redirect to /login (with a safe ``next``) for
pages; a viewer calling an admin action is 403 in both, rendered by the app's error handler
(JSON for the API, an HTML page for the pages).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import redirect, request, url_for

from services.backoffice_gateway.auth.principal import Principal, current_principal
from services.backoffice_gateway.errors import forbidden, unauthenticated

F = TypeVar("F", bound=Callable[..., Any])


def wants_json() -> bool:
    """API paths, and clients that ask for JSON rather than HTML, get JSON answers."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def require_principal() -> Principal:
    principal = current_principal()
    if principal is None:
        raise unauthenticated()
    return principal


def login_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_principal() is None:
            if wants_json():
                raise unauthenticated()
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return cast(F, wrapper)


def admin_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        principal = current_principal()
        if principal is None:
            if wants_json():
                raise unauthenticated()
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if not principal.is_admin:
            raise forbidden()
        return view(*args, **kwargs)

    return cast(F, wrapper)
