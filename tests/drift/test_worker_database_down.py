"""The scheduled worker outlives a database that is down: each pass fails (logged), the
next one still comes, and the worker task stays alive."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

from services.common.db import make_async_engine
from services.devstack.embedded import free_port
from services.drift.detector import DriftDeps
from services.drift.worker import DriftWorker


async def test_worker_keeps_running_while_the_database_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on this port: every connection is refused, as with PostgreSQL down.
    engine = make_async_engine(f"postgresql+psycopg://drift:x@127.0.0.1:{free_port()}/drift")
    deps = DriftDeps(
        engine=engine,
        caller=cast(Any, object()),  # configured; never reached: the run row fails first
        ingest=cast(Any, None),
        ledger=cast(Any, None),
    )
    worker = DriftWorker(deps, interval=0.05, stripe_configured=True)
    caplog.set_level(logging.WARNING, logger="services.drift.worker")
    worker.start()
    try:
        for _ in range(400):
            failures = [
                r for r in caplog.records if r.getMessage() == "scheduled drift pass failed"
            ]
            if len(failures) >= 2:
                break
            await asyncio.sleep(0.05)
        assert len(failures) >= 2, "the worker went on to a second pass"
        assert worker._task is not None and not worker._task.done()
    finally:
        await worker.stop()
        await engine.dispose()
