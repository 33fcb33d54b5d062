"""Logging in and out with a password: the ``auth`` blueprint (/login, /logout).

After login the browser goes to ``next`` only when it is a path on this site (no scheme, no
host, no ``//`` or backslash tricks): never an open redirect.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
)
from jinja2 import TemplateNotFound
from markupsafe import escape

from services.backoffice_gateway.auth import throttle
from services.backoffice_gateway.auth.credentials import hash_secret, new_secret
from services.backoffice_gateway.auth.middleware import CSRF_FIELD, SESSION_COOKIE, client_ip
from services.backoffice_gateway.auth.passwords import verify_password
from services.backoffice_gateway.auth.principal import current_principal
from services.backoffice_gateway.config import GatewayConfig
from services.backoffice_gateway.errors import ApiError
from services.backoffice_gateway.store import Store, repository

bp = Blueprint("auth", __name__)
LOGIN_CSRF_KEY = "login_csrf"


def safe_next(target: str | None) -> str:
    """``target`` when it is a local path, else "/"."""
    if not target or len(target) > 2048:
        return "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(ch) < 32 for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _config() -> GatewayConfig:
    config: GatewayConfig = current_app.config["GATEWAY"]
    return config


def _store() -> Store:
    store: Store = current_app.extensions["gateway_store"]
    return store


def _login_csrf() -> str:
    token = session.get(LOGIN_CSRF_KEY)
    if not isinstance(token, str):
        token = new_secret()
        session[LOGIN_CSRF_KEY] = token
    return token


def _form(error: str | None, status: int, username: str = "", next_url: str = "/") -> Response:
    context = {
        "error": error,
        "username": username,
        "next": safe_next(next_url),
        "csrf_token": _login_csrf(),
    }
    try:
        body = render_template("login.html", **context)
    except TemplateNotFound:  # gwui's template not installed: a plain form does the job
        message = f"<p role='alert'>{escape(error)}</p>" if error else ""
        body = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Sign in</title>"
            "</head><body><main><h1>Back-office sign in</h1>" + message +
            "<form method='post' action='/login'>"
            f"<input type='hidden' name='csrf_token' value='{escape(context['csrf_token'])}'>"
            f"<input type='hidden' name='next' value='{escape(context['next'])}'>"
            "<label>Username <input name='username' autocomplete='username' "
            f"value='{escape(username)}' required></label>"
            "<label>Password <input type='password' name='password' "
            "autocomplete='current-password' required></label>"
            "<button type='submit'>Sign in</button></form></main></body></html>"
        )
    response = make_response(body, status)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    return response


@bp.get("/login")
def login() -> Response:
    if current_principal() is not None:
        return redirect(safe_next(request.args.get("next")))  # type: ignore[return-value]
    return _form(None, 200, next_url=request.args.get("next", "/"))


@bp.post("/login")
def login_submit() -> Response:
    config = _config()
    username = request.form.get("username", "").strip().lower()[:128]
    password = request.form.get("password", "")
    next_url = request.form.get("next", "/")
    sent = request.form.get(CSRF_FIELD, "")
    expected = session.get(LOGIN_CSRF_KEY)
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise ApiError(403, "csrf_failed", "the sign-in form expired; reload and try again")
    ip = client_ip()
    store = _store()
    with store.session() as db:
        try:
            throttle.check_allowed(db, config, username, ip)
        except ApiError as refused:
            return _form(refused.message, 429, username, next_url)
        operator = repository.operator_by_name(db, username) if username else None
        ok = verify_password(password, operator.password_hash if operator else None)
        if operator is None or operator.disabled_at is not None or not ok:
            repository.record_login_attempt(db, username, ip, succeeded=False)
            db.commit()
            return _form("Wrong username or password.", 401, username, next_url)
        repository.record_login_attempt(db, username, ip, succeeded=True)
        cookie = new_secret()
        repository.create_session(
            db,
            operator.id,
            hash_secret(cookie),
            new_secret(),
            timedelta(hours=config.session_hours),
            ip,
            request.headers.get("User-Agent"),
        )
        db.commit()
    session.pop(LOGIN_CSRF_KEY, None)
    response = redirect(safe_next(next_url))
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(config.session_hours * 3600),
        httponly=True,
        samesite="Lax",
        secure=request.is_secure or config.force_secure_cookies,
        path="/",
    )
    return response  # type: ignore[return-value]


@bp.post("/logout")
def logout() -> Response:
    principal = current_principal()
    if principal is not None and principal.session_hash is not None:
        with _store().session() as db:
            repository.revoke_session(db, principal.session_hash)
            db.commit()
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response  # type: ignore[return-value]
