"""The Flask application factory.

``create_app`` wires the gateway's objects (config, store, backends, banner cache), the
authentication middleware, the blueprints ``auth`` (/login, /logout), ``api`` (/api/v1) and,
when installed, gwui's ``pages``; and the error handlers, which turn every failure into a
defined answer: JSON ``{"error": ...}`` for the API and for clients asking for JSON, a short
HTML page otherwise. Never a stack trace: an unexpected exception is logged with its
traceback and answered 500 "internal error".
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from flask import Flask, Response, jsonify, make_response, render_template, request
from flask.sessions import SecureCookieSessionInterface
from jinja2 import TemplateNotFound
from markupsafe import escape
from werkzeug.exceptions import HTTPException

from services.backoffice_gateway import metrics
from services.backoffice_gateway.auth import middleware
from services.backoffice_gateway.auth.decorators import wants_json
from services.backoffice_gateway.auth.login import bp as auth_bp
from services.backoffice_gateway.backends import Backends
from services.backoffice_gateway.config import GatewayConfig
from services.backoffice_gateway.context import EXTENSION, Gateway
from services.backoffice_gateway.errors import ApiError, code_for_status
from services.backoffice_gateway.store import Store
from services.backoffice_gateway.views.banners import BannerCache
from services.backoffice_gateway.views.dashboard import DashboardCache
from services.common.db_errors import is_unavailable
from services.common.grpc_errors import DATABASE_AWAY

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024


def _error_response(error: ApiError) -> Response:
    if wants_json():
        response = jsonify(error.body())
    else:
        try:
            body = render_template("error.html", error=error)
        except TemplateNotFound:
            body = (
                "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                f"<title>{error.status}</title></head><body><main><h1>{error.status}</h1>"
                f"<p>{escape(error.message)}</p><p><a href='/'>Back</a></p></main></body></html>"
            )
        response = make_response(body)
    response.status_code = error.status
    retry_after = error.extra.get("retry_after")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return _error_response(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = error.description or error.name
        if status == 404:
            message = "no such resource"
        response = _error_response(ApiError(status, code_for_status(status), message))
        if status == 405 and error.get_response().headers.get("Allow"):
            response.headers["Allow"] = error.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        if is_unavailable(error):
            log.warning("gateway database unavailable")
            return _error_response(ApiError(503, "unavailable", DATABASE_AWAY))
        log.error("unexpected error", exc_info=error)
        return _error_response(ApiError(500, "internal", "internal error"))


class _LoginFormSession(SecureCookieSessionInterface):
    """Flask's signed cookie (only the login form's CSRF token lives there), Secure whenever
    the request came over TLS, like the session cookie."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def _register_pages(app: Flask) -> None:
    """gwui's blueprint, when its package is present (the API works without it)."""
    try:
        module = importlib.import_module("services.backoffice_gateway.pages")
    except ModuleNotFoundError as exc:
        if exc.name != "services.backoffice_gateway.pages":
            raise
        return
    app.register_blueprint(module.bp)


def create_app(config: GatewayConfig | None = None) -> Flask:
    config = config or GatewayConfig.from_env()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config.secret_key,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SESSION_COOKIE_NAME="gw_pre",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.force_secure_cookies,
        JSON_SORT_KEYS=False,
        GATEWAY=config,
    )
    app.session_interface = _LoginFormSession()
    store = Store(config.database_url)
    backends = Backends(config)
    app.extensions[EXTENSION] = Gateway(
        config=config, store=store, backends=backends,
        banners=BannerCache(config.banner_cache_seconds),
        dashboards=DashboardCache(config.dashboard_cache_seconds),
    )
    app.extensions["gateway_store"] = store
    metrics.install(app)
    middleware.install(app, store)
    _install_error_handlers(app)

    from services.backoffice_gateway.api import bp as api_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(api_bp)
    _register_pages(app)

    @app.get("/healthz")
    def healthz() -> Any:
        """Liveness and readiness: the gateway's own database must answer."""
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return jsonify({"ok": False, "ready": False, "checks": {"database": False}}), 503
        return jsonify({"ok": True, "ready": True, "checks": {"database": True}})

    return app
