"""The projection's worker processes: one way to start them, for the replay and the consumer.

Workers are started as new interpreters ("spawn"), never forked. By the time the ledger needs
them it runs gRPC, NATS and asyncio threads, and a child forked from such a process can crash
in its after-fork hooks: the test suite once printed a segmentation fault from the consumer's
forked worker (issue 12, stop 20), and the replay's pool forked the same way.

A spawning pool starts a worker when work arrives and none is idle, so the first replay pays
for it: 0.07-0.09 s to start the interpreter and 0.24 s to import the projection at its first
batch (measured on the 2-core VM of 2026-12-06; a 1M-event replay takes ~50 s). Starting the
workers with the ledger instead was tried and dropped: it saved only the 0.08 s (the import
comes with the first task) and every start of the ledger paid it, replay or not.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from services.ledger.effects import tune_gc_for_projection


def projection_pool(workers: int) -> ProcessPoolExecutor:
    """Up to ``workers`` spawned projection processes (the projection's GC settings in each)."""
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=tune_gc_for_projection
    )
