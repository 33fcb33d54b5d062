"""Drift's archive diff and its end-of-pass check rows (issue 8 gaps), measured in one run.

* The archive diff: the event ids ingest holds over a window, read the way drift did before
  (``ListEvents``, 500 full rows a call, each call counting the whole window) and the way it
  does now (``ids_only``: two columns, 10,000 a call, no count). Same archive, same run.
* The check rows: a pass now writes every subscription's check row in the transaction that
  records its outcome (a failed pass leaves the previous ones); the cost of that one
  statement for ``--subscriptions`` rows, next to the page-by-page writes it replaced.

The archive is loaded with COPY; ingest runs as its own process (the real gRPC path).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from billing.common.v1 import common_pb2
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bench.drift_bench import load_world, packed_world
from bench.ledger_bench import spawn, wait_healthy
from bench.stack import bench_stack
from services.common.db import make_async_engine
from services.common.grpc_client import aio_channel
from services.devstack.embedded import free_port
from services.drift import store
from services.drift.coverage import archived_ids
from services.stripe_simulator import WorldConfig
from services.stripe_simulator.packed import PackedWorld

OLD_PAGE = 500


def _ts(seconds: int) -> Timestamp:
    ts = Timestamp()
    ts.FromSeconds(seconds)
    return ts


async def old_read(port: int, since: int, until: int) -> tuple[set[str], int]:
    """The former read: 500 full rows a call (the count of the window with each)."""
    out: set[str] = set()
    calls = 0
    token = ""
    async with aio_channel(f"127.0.0.1:{port}") as channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        while True:
            response = await ingest.ListEvents(
                ingest_pb2.ListEventsRequest(
                    created=common_pb2.Period(start=_ts(since), end=_ts(until + 1)),
                    page=common_pb2.PageRequest(page_size=OLD_PAGE, page_token=token),
                )
            )
            calls += 1
            out.update(e.event_id for e in response.events)
            token = response.page.next_page_token
            if not token:
                return out, calls


async def new_read(port: int, since: int, until: int) -> set[str]:
    async with aio_channel(f"127.0.0.1:{port}") as channel:
        return await archived_ids(ingest_pb2_grpc.IngestServiceStub(channel), since, until)


async def check_rows(database_url: str, count: int) -> tuple[float, float]:
    """Seconds to write ``count`` check rows as one statement, and page by page (100)."""
    engine = make_async_engine(database_url, pool_size=2)
    rows = [
        (f"sub_bench{i:08d}", f"tenant-{i // 3:07d}", f"cus_bench{i:08d}") for i in range(count)
    ]
    try:
        for run_id in ("run-once", "run-pages"):
            await store.create_run(engine, run_id, "all", "manual", "bench")
        began = time.perf_counter()
        async with engine.begin() as conn:
            await store.mark_checked(conn, "run-once", rows)
        once = time.perf_counter() - began
        began = time.perf_counter()
        for start in range(0, count, 100):
            async with engine.begin() as conn:
                await store.mark_checked(conn, "run-pages", rows[start : start + 100])
        pages = time.perf_counter() - began
    finally:
        await engine.dispose()
    return once, pages


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="drift_archive_bench", description=__doc__)
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--months", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--subscriptions", type=int, default=20_000, help="check rows")
    parser.add_argument("--world-cache", type=Path, default=None)
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    config = WorldConfig(seed=args.seed, tenants=args.tenants, months=args.months)
    world = packed_world(config, args.world_cache or Path(tempfile.mkdtemp(prefix="drift-w-")))
    created = PackedWorld(world, with_objects=False).meta.created
    since, until = max(created) - 30 * 86_400, max(created)
    in_window = sum(1 for c in created if since <= c <= until)
    print(f"archive: {len(created)} events, {in_window} in the 30-day window")
    logs = Path(os.environ.get("BENCH_LOG_DIR", tempfile.gettempdir()))
    with bench_stack() as stack:
        load_world(stack.database_url, world)
        grpc_port, admin_port = free_port(), free_port()
        env = dict(os.environ)
        env.update(
            DATABASE_URL=stack.database_url,
            NATS_URL=stack.nats_url,
            STRIPE_WEBHOOK_SECRETS="whsec_bench",
            INGEST_HTTP_PORT=str(free_port()),
            INGEST_GRPC_PORT=str(grpc_port),
            INGEST_ADMIN_PORT=str(admin_port),
            LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        )
        child = spawn("services.ingest", env, logs / "bench-drift-archive-ingest.log")
        try:
            wait_healthy(f"http://127.0.0.1:{admin_port}/healthz", child)
            for _ in range(2):  # the second round: warm caches for both
                began = time.perf_counter()
                old_ids, calls = asyncio.run(old_read(grpc_port, since, until))
                old = time.perf_counter() - began
                began = time.perf_counter()
                new_ids = asyncio.run(new_read(grpc_port, since, until))
                new = time.perf_counter() - began
            assert old_ids == new_ids, "the two reads disagree"
            new_calls = -(-len(new_ids) // 10_000)
            print(
                f"archive diff read: before {old:.2f}s in {calls} calls of {OLD_PAGE};"
                f" ids_only {new:.2f}s in {new_calls} calls of 10,000;"
                f" {len(new_ids)} ids; ratio {old / max(new, 1e-6):.1f}x"
            )
        finally:
            child.terminate()
            child.wait(timeout=30)
        once, pages = asyncio.run(check_rows(stack.database_url, args.subscriptions))
        print(
            f"check rows: {args.subscriptions} in one end-of-pass statement {once:.2f}s;"
            f" page by page (100 a transaction) {pages:.2f}s"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
