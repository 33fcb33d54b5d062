"""The projection's worker processes: one way to start them, for the replay and the consumer.

Workers are started as new interpreters ("spawn"), never forked. By the time the ledger needs
them it runs gRPC, NATS and asyncio threads, and a child forked from such a process can crash
in its after-fork hooks: the test suite once printed a segmentation fault from the consumer's
forked worker (issue 12, stop 20), and the replay's pool forked the same way. A spawned worker
imports the projection afresh (~1-2 s of CPU), so :func:`warm_up` starts the workers when the
ledger starts, not inside the first replay or batch it would delay.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor

from services.ledger.effects import tune_gc_for_projection


def projection_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` spawned projection processes (the projection's GC settings in each)."""
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=tune_gc_for_projection
    )


def _worker_pid() -> int:
    """What a warm-up asks a worker: any answer means it has started and imported."""
    return os.getpid()


def warm_up(pool: ProcessPoolExecutor, workers: int) -> list[Future[int]]:
    """Start ``pool``'s ``workers`` processes now, each importing the projection in its
    initializer. A spawning pool starts a process for each task it is given while none is
    idle, up to its size, so ``workers`` tasks given at once start them all (a forking pool
    would start them all at its first task); the work that follows queues behind these."""
    return [pool.submit(_worker_pid) for _ in range(workers)]
