"""N copies of one service process sharing its ports (``INGEST_PROCESSES``, ``LEDGER_PROCESSES``).

One Python process uses one core: the event loop, the HTTP parser and the projection all run
on it. To use the machine's other cores a service runs as a small parent that starts ``count``
copies of itself, each binding the same ports with ``SO_REUSEPORT`` (the kernel spreads new
connections over them; gRPC sets that option itself on Linux). The parent does nothing but
wait: it forwards SIGTERM / SIGINT to every copy, and when one copy exits on its own it stops
the others and exits with that copy's code, so whoever supervises the service (``make run``'s
supervisor, a container runtime) restarts the group as one unit.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

from services.common import multiproc_metrics
from services.common.config import ConfigError, env_int

# Set in every copy: its index in the group (0 .. count-1), e.g. for its log lines.
INDEX_VARIABLE = "PROCESS_GROUP_INDEX"
REPO_ROOT = Path(__file__).resolve().parents[2]


def die_with_parent() -> None:
    """``preexec_fn``: the kernel sends SIGTERM to the child when its parent dies (even by
    SIGKILL), so no orphan keeps ports or lock files (a copy of a group, `make run`'s
    services and embedded servers)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def run_group(
    module: str,
    count: int,
    env_for: Callable[[int], Mapping[str, str]],
    *,
    grace: float = 20.0,
) -> int:
    """Run ``python -m module`` ``count`` times (environment: ours plus ``env_for(index)``)
    until a signal or until one copy exits; returns the exit code for the parent."""
    copies: list[subprocess.Popen[bytes]] = []
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for copy in copies:
            if copy.poll() is None:
                copy.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for index in range(count):
        env = {**os.environ, **env_for(index), INDEX_VARIABLE: str(index)}
        copies.append(
            subprocess.Popen(
                [sys.executable, "-m", module],
                env=env,
                cwd=REPO_ROOT,
                preexec_fn=die_with_parent,
            )
        )
    code = 0
    while not stopping:
        exited = next((copy for copy in copies if copy.poll() is not None), None)
        if exited is not None:
            # One copy died on its own: the group is no longer what was asked for.
            code = exited.returncode or 1
            print(
                f"{module}: copy pid {exited.pid} exited with {exited.returncode},"
                " stopping the group",
                file=sys.stderr,
                flush=True,
            )
            forward(signal.SIGTERM, None)
            break
        time.sleep(0.2)
    deadline = time.monotonic() + grace
    for copy in copies:
        try:
            copy.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            copy.kill()
            copy.wait()
    return code


def group_size(prefix: str) -> int:
    """``<PREFIX>_PROCESSES`` (default 1): how many copies of the service to run."""
    count = env_int(f"{prefix}_PROCESSES", 1)
    if count < 1:
        raise ConfigError(f"{prefix}_PROCESSES must be at least 1")
    return count


def run_copies(module: str, prefix: str, count: int) -> int:
    """Run ``count`` copies of ``module``, each told to be a single process that binds its
    ports with ``SO_REUSEPORT`` (``<PREFIX>_REUSE_PORT=1``) and counts its metrics in a
    directory shared by the group, so a scrape of the shared admin port adds every copy up
    (services/common/multiproc_metrics.py)."""
    metrics_directory = multiproc_metrics.prepare_directory(prefix.lower())
    return run_group(
        module,
        count,
        lambda _index: {
            f"{prefix}_PROCESSES": "1",
            f"{prefix}_REUSE_PORT": "1",
            multiproc_metrics.MULTIPROC_ENV: metrics_directory,
        },
    )
