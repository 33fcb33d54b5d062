"""The gateway's Prometheus metrics: requests counted and timed by endpoint and status, served
on the gateway's own admin port (``GATEWAY_ADMIN_PORT``, 9094) like every service's
``/metrics`` and ``/healthz``, never on the operators' port and never behind a login.

The gateway runs as several gunicorn worker processes: each counts in prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set up by ``serve`` before this module,
hence prometheus-client, is first imported), and the admin port, served by the gunicorn
master, adds every worker's counts up. A worker that exits is marked dead so its live gauges
stop counting (counters stay).

The endpoint label is the matched route's rule (``/accounts/<account_id>``), never the raw
path, so labels stay few whatever the URLs; unmatched paths share ``<unmatched>``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram

from services.common import multiproc_metrics

log = logging.getLogger(__name__)

UNMATCHED = "<unmatched>"

REQUESTS = Counter(
    "gateway_http_requests_total",
    "HTTP requests answered by the back-office gateway",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "gateway_http_request_duration_seconds",
    "Time to answer a back-office gateway HTTP request (server side)",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def install(app: Flask) -> None:
    """Count and time every answer of ``app`` (errors included: they are answers too)."""

    @app.before_request
    def _started() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _answered(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
            labels = (rule, request.method, str(response.status_code))
            REQUESTS.labels(*labels).inc()
            LATENCY.labels(*labels).observe(time.perf_counter() - started)
        return response


def worker_exited(pid: int) -> None:
    """gunicorn's ``child_exit`` hook."""
    multiproc_metrics.process_exited(pid)


Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def admin_wsgi(database_ok: Callable[[], bool]) -> Wsgi:
    """``/metrics`` (every worker's counts) and ``/healthz`` (the gateway's database)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        if path == "/metrics":
            body = multiproc_metrics.latest()
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [body]
        if path == "/healthz":
            ok = database_ok()
            report = {"ok": ok, "ready": ok, "checks": {"database": ok}, "degraded": []}
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "application/json")])
            return [json.dumps(report).encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line each."""


def start_admin_server(host: str, port: int, app: Wsgi) -> WSGIServer:
    """Serve ``app`` on host:port from a daemon thread (gunicorn's master, ``when_ready``)."""
    server = make_server(host, port, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="gateway-admin", daemon=True).start()
    log.info("gateway admin port listening", extra={"port": server.server_port})
    return server


__all__ = [
    "LATENCY",
    "REQUESTS",
    "admin_wsgi",
    "install",
    "start_admin_server",
    "worker_exited",
]
