"""The scheduled drift pass (``DRIFT_INTERVAL`` seconds apart; 0 disables it).

Only when Stripe is configured: without it the worker logs once and stays idle. A pass that
fails (Stripe away, ingest, the ledger or the database unreachable) is logged (and recorded as
a failed run when the database is there) and the next one comes at the next interval; the
worker itself never dies of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from sqlalchemy.exc import InterfaceError, OperationalError

from services.common.grpc_errors import ServiceError
from services.drift.detector import DriftDeps, run_pass

log = logging.getLogger(__name__)


class DriftWorker:
    def __init__(self, deps: DriftDeps, interval: float, stripe_configured: bool) -> None:
        self.deps = deps
        self.interval = interval
        self.enabled = stripe_configured and deps.caller is not None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if not self.enabled:
            log.info("drift worker idle: Stripe is not configured (STRIPE_API_KEY)")
            return
        self._task = asyncio.create_task(self._loop(), name="drift-worker")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await run_pass(self.deps, account_id=None, trigger="schedule")
            # The failures of things outside the process (Stripe, ingest, the ledger, the
            # database away or restarting); anything else is a bug and ends the worker loudly.
            except (
                ServiceError,
                grpc.aio.AioRpcError,
                OSError,
                OperationalError,
                InterfaceError,
            ) as exc:
                log.warning("scheduled drift pass failed", extra={"error": str(exc)[:300]})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
