"""Run an asyncio service until SIGTERM/SIGINT, then shut it down in order."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any


async def wait_for_shutdown_signal() -> None:
    """Return on the first SIGTERM or SIGINT (Ctrl-C, `kubectl delete pod`, `make run` exit)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_service(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Entry point helper: run ``main`` on a fresh event loop."""
    asyncio.run(main())
