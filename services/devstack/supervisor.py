"""Keeps `make run`'s processes alive: a child that dies is restarted with backoff.

Each supervised process is a :class:`Supervised`: a name, a way to start it and a way to ask
whether it still runs. The loop (:meth:`Supervisor.tick`) restarts a dead one after a delay
that doubles with every crash in a row (1 s up to 30 s) and is forgotten once the process
has stayed up for a minute, and says so in one line on stderr:

    supervisor: ingest exited with -9; restart 1 in 1.0 s

Embedded PostgreSQL and NATS are supervised the same way as the services.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0


@dataclass
class Supervised:
    """A process the supervisor keeps running.

    ``start`` (re)starts it and returns once it is ready; ``exit_code`` is None while it runs.
    """

    name: str
    start: Callable[[], None]
    exit_code: Callable[[], int | None]
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)
    next_attempt: float | None = None
    crashes_in_row: int = 0


def _say(message: str) -> None:
    print(f"supervisor: {message}", file=sys.stderr, flush=True)


@dataclass
class Supervisor:
    processes: list[Supervised] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic

    def add(self, process: Supervised) -> None:
        process.started_at = self.clock()
        self.processes.append(process)

    def tick(self) -> None:
        """Check every process once; restart those whose backoff has elapsed."""
        now = self.clock()
        for process in self.processes:
            if process.next_attempt is None:
                code = process.exit_code()
                if code is None:
                    if now - process.started_at >= STABLE_AFTER:
                        process.crashes_in_row = 0
                    continue
                delay = min(INITIAL_BACKOFF * 2**process.crashes_in_row, MAX_BACKOFF)
                process.crashes_in_row += 1
                process.next_attempt = now + delay
                _say(
                    f"{process.name} exited with {code}; restart {process.restarts + 1}"
                    f" in {delay:.1f} s"
                )
            if process.next_attempt is not None and now >= process.next_attempt:
                self._restart(process)

    def _restart(self, process: Supervised) -> None:
        process.restarts += 1
        try:
            process.start()
        except Exception as exc:  # a failed start is one more crash; the loop tries again
            delay = min(INITIAL_BACKOFF * 2**process.crashes_in_row, MAX_BACKOFF)
            process.crashes_in_row += 1
            process.next_attempt = self.clock() + delay
            _say(f"{process.name} did not start ({exc}); next attempt in {delay:.1f} s")
            return
        process.next_attempt = None
        process.started_at = self.clock()
        _say(f"{process.name} restarted (restart {process.restarts})")
