"""Per-request authentication, CSRF checking and security headers.

* ``Authorization: Bearer <token>``: an API token (stored hashed). Such requests carry no
  ambient credential a browser would send by itself, so they need no CSRF token.
* Otherwise the session cookie: a random id whose SHA-256 names a ``gateway.sessions`` row.
  Every state-changing request (POST, PUT, PATCH, DELETE) made with a session must carry the
  session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``), else 403.
"""

from __future__ import annotations

import hmac

from flask import Flask, Response, g, request

from services.backoffice_gateway.auth.credentials import hash_secret
from services.backoffice_gateway.auth.principal import Principal
from services.backoffice_gateway.errors import ApiError, unauthenticated
from services.backoffice_gateway.store import Store, repository

SESSION_COOKIE = "gw_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# No inline script or style anywhere: charts are server-rendered SVG, behaviour comes from
# files under /static.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def client_ip() -> str:
    """The peer address (a trusted proxy must be configured with ProxyFix to use XFF)."""
    return request.remote_addr or "unknown"


def load_principal(store: Store) -> None:
    """Set ``g.principal`` (or None) from the bearer token or the session cookie."""
    g.principal = None
    token = _bearer()
    if "Authorization" in request.headers and token is None:
        raise unauthenticated("malformed Authorization header (expected: Bearer <token>)")
    with store.session() as db:
        if token is not None:
            operator = repository.operator_for_token(db, hash_secret(token))
            if operator is None:
                raise unauthenticated("invalid or revoked API token")
            g.principal = Principal(
                operator.id, operator.username, operator.role, "token",
                utc_offset_minutes=operator.utc_offset_minutes,
            )
            if db.dirty:  # last_used_at moved (at most once a minute): no COMMIT otherwise
                db.commit()
            return
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie or len(cookie) > 256:
            return
        id_hash = hash_secret(cookie)
        found = repository.active_session(db, id_hash)
        if found is None:
            return
        repository.touch_session(db, found.session)
        if db.dirty:
            db.commit()
        g.principal = Principal(
            found.operator.id,
            found.operator.username,
            found.operator.role,
            "session",
            csrf_token=found.session.csrf_token,
            session_hash=id_hash,
            utc_offset_minutes=found.operator.utc_offset_minutes,
        )


def check_csrf() -> None:
    """403 for a state-changing session request without the session's CSRF token."""
    principal: Principal | None = g.get("principal")
    if request.method in SAFE_METHODS or principal is None or principal.via != "session":
        return
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    expected = principal.csrf_token or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise ApiError(403, "csrf_failed", "missing or wrong CSRF token")


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if g.get("principal") is not None:
        response.headers["Cache-Control"] = "no-store"
    return response


def install(app: Flask, store: Store) -> None:
    @app.before_request
    def _authenticate() -> None:
        load_principal(store)
        check_csrf()

    app.after_request(add_security_headers)
