"""Leftovers of a previous `make run` that was killed hard (SIGKILL, a closed terminal).

A server it started may still run and hold its port and lock file. We stop it only when the
pid file names a live process whose command line points at the same data folder, so another
user's server is never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def stop_stale_server(pid_file: Path, timeout: float = 15.0) -> bool:
    """Stop the process named by ``pid_file`` if it serves this data folder; True if it did."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    folder = str(pid_file.parent.resolve())
    if folder not in _cmdline(pid):
        return False
    # SIGINT is PostgreSQL's fast shutdown and a graceful stop for nats-server.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _cmdline(pid):
        time.sleep(0.1)
    if _cmdline(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True
