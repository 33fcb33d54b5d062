"""The admin HTTP port every service exposes: ``/metrics`` (Prometheus) and ``/healthz``.

Kept apart from the service's traffic ports so a scrape or a probe never queues behind
business requests, and so the admin port can stay private in a cluster.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import multiproc_metrics
from services.common.grpc_errors import short
from services.common.nats_link import NatsLink

HealthCheck = Callable[[], Awaitable[dict[str, bool]]]


def admin_app(check: HealthCheck, *, degraded_by: HealthCheck | None = None) -> web.Application:
    """``/healthz`` reports every dependency: ``check``'s are required (any one failing: 503,
    ``ready`` false), ``degraded_by``'s are reported (``degraded``) without making the service
    unready, for dependencies the service does its job without (ingest archives webhooks
    while NATS is away: taking it out of rotation then would lose webhooks).

    ``{"ok": .., "ready": .., "checks": {"database": true, "nats": false}, "degraded": ["nats"]}``
    """

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=multiproc_metrics.latest(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(_: web.Request) -> web.Response:
        required = await check()
        optional = await degraded_by() if degraded_by is not None else {}
        ready = all(required.values())
        status = 200 if ready else 503
        report = {
            "ok": ready,
            "ready": ready,
            "checks": {**required, **optional},
            "degraded": sorted(name for name, up in optional.items() if not up),
        }
        return web.Response(status=status, text=json.dumps(report), content_type="application/json")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app


def database_check(engine: AsyncEngine) -> HealthCheck:
    """A ``/healthz`` check that answers whether PostgreSQL runs a query within 2 seconds.

    The probe runs as its own task and is never cancelled: cancelling a query on a frozen
    server makes the driver wait for the cancel request itself (12 s seen with SIGSTOPped
    PostgreSQL), longer than any probe timeout. A probe still running is reused, not piled up.
    """
    running: list[asyncio.Task[None]] = []

    async def probe() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def forget(task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: a failed probe is an answer, not an error to log
        if task in running:
            running.remove(task)

    async def check() -> dict[str, bool]:
        if not running:
            task = asyncio.ensure_future(probe())
            task.add_done_callback(forget)
            running.append(task)
        task = running[0]
        done, _ = await asyncio.wait({task}, timeout=2)
        if not done:
            return {"database": False}
        return {"database": not task.cancelled() and task.exception() is None}

    return check


class _ClientMistakes(logging.Filter):
    """aiohttp logs every malformed request at ERROR with a traceback: a client's mistake is
    not our error. Such records become one WARNING line without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "malformed HTTP request: %s", (short(str(exc), 120),)
        return True


_CLIENT_MISTAKES = _ClientMistakes()


def nats_check(link: NatsLink) -> HealthCheck:
    """A ``/healthz`` check: is the NATS connection (with JetStream) up right now?"""

    async def check() -> dict[str, bool]:
        return {"nats": link.connected}

    return check


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    **runner_options: Any,
) -> web.AppRunner:
    """Start ``app`` on host:port and return the runner (``await runner.cleanup()`` stops it).

    ``runner_options`` go to aiohttp's request handler (e.g. ``keepalive_timeout``);
    ``reuse_port``: several processes of one service share the port (``SO_REUSEPORT``).
    """
    server_log = logging.getLogger("aiohttp.server")
    if _CLIENT_MISTAKES not in server_log.filters:
        server_log.addFilter(_CLIENT_MISTAKES)
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True, reuse_port=reuse_port or None).start()
    return runner
