"""PostgreSQL + NATS for a benchmark run: embedded servers in a temp folder, thrown away after
the run, or in a folder the caller keeps (a filled world measured again without its fill)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from services.common.migrate import upgrade_to_head
from services.devstack.embedded import EmbeddedNats, EmbeddedPostgres, free_port


@dataclass
class BenchStack:
    database_url: str
    nats_url: str
    # The servers' processes (PostgreSQL's postmaster: its backends are its children), so a
    # bench can report their CPU as well as the services'.
    postgres_pid: int | None = None
    nats_pid: int | None = None


@contextmanager
def bench_stack(keep: Path | None = None) -> Iterator[BenchStack]:
    """The servers and a migrated ``bench`` database; with ``keep``, their data live in that
    folder and stay there after the run (a later run finds the database as it was left)."""
    root = keep if keep is not None else Path(tempfile.mkdtemp(prefix="billing-bench-"))
    pg = EmbeddedPostgres(root / "pg", free_port())
    nats = EmbeddedNats(root / "nats", free_port())
    pg.start()
    nats.start()
    try:
        url = pg.create_database("bench")
        upgrade_to_head(url)
        yield BenchStack(
            url,
            nats.url,
            postgres_pid=pg.process.pid if pg.process else None,
            nats_pid=nats.process.pid if nats.process else None,
        )
    finally:
        nats.stop()
        pg.stop()
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
