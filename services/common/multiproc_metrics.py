"""Prometheus metrics of a service that runs as several processes behind one admin port.

The back-office gateway (gunicorn workers) and a service started as a process group
(``INGEST_PROCESSES`` / ``LEDGER_PROCESSES`` above 1) share one ``/metrics`` endpoint among
processes that each count on their own. Without help a scrape reads whichever process the
kernel hands the connection to, so counters jump between copies' values and a dashboard's
rates are wrong. prometheus-client's multiprocess mode fixes that: each process writes its
values to files in ``PROMETHEUS_MULTIPROC_DIR`` and the endpoint adds them up.

This module is that mode's one home: the parent prepares the directory (before any child
imports prometheus-client, which picks its value store at import time), every copy serves
:func:`latest`, and a copy that exits is marked dead so its live gauges stop counting.
Gauges declare how copies combine (``multiprocess_mode``): the consumer-lag gauges read the
same JetStream numbers in every copy, so the most recent value is the answer, not a sum.

Single-process services are untouched: without the variable, :func:`latest` serves the
default registry (process and platform collectors included, which multiprocess mode lacks).
prometheus-client is imported inside the functions, never here: a parent that enables the
mode for itself imports this module first.
"""

from __future__ import annotations

import os
import sys
import tempfile

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_directory(prefix: str) -> str:
    """A fresh, empty directory for the copies' metric files, returned (and not exported:
    the caller hands it to its children). One named in ``PROMETHEUS_MULTIPROC_DIR`` is
    reused but emptied, because files of an earlier run would count again."""
    directory = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix=f"{prefix}-metrics-")
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.unlink(os.path.join(directory, name))
    return directory


def enable_in_this_process(prefix: str) -> None:
    """For a parent that forks its workers (gunicorn): export the directory before
    prometheus-client is imported here, so the workers inherit the mode."""
    if "prometheus_client" in sys.modules:
        # Imported already in single-process mode: the workers would count in memory.
        raise RuntimeError("multiprocess metrics must be enabled before prometheus_client loads")
    os.environ[MULTIPROC_ENV] = prepare_directory(prefix)


def process_exited(pid: int) -> None:
    """Forget the live gauges of a copy that is gone (its counters keep counting)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def latest() -> bytes:
    """The text a ``/metrics`` scrape gets: every copy's values added up in multiprocess
    mode, this process's registry otherwise."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess

    if not os.environ.get(MULTIPROC_ENV):
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)
