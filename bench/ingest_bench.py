"""Ingest throughput: signed webhooks over loopback at concurrency 64 until N are archived
and published, against the one-commit-per-request baseline measured in the same run.

Prints webhooks/s, p50/p99 latency, and the ratio to plain single-row ``INSERT ... COMMIT``
into the same PostgreSQL (what an ingest without group commit could reach at best).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import httptools
import psycopg
import uvloop

from bench.stack import bench_stack
from services.common.config import libpq_url
from services.devstack.embedded import free_port, wait_for_port
from services.stripe_simulator.signing import sign

T = TypeVar("T")
SECRET = "whsec_bench"
REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = (
    REPO_ROOT.parent
    / "shared/fixtures/stripe_events/stripe-ruby-mock"
    / "customer.subscription.created__active_api2020-08-27.json"
)


def make_bodies(count: int) -> list[bytes]:
    """Distinct events shaped like a real subscription.created (about 3 KB each)."""
    if TEMPLATE.exists():
        document = json.loads(TEMPLATE.read_bytes())
    else:  # the shared fixtures are optional for benchmarks
        document = {"object": "event", "type": "customer.subscription.created",
                    "api_version": "2020-08-27", "data": {"object": {"id": "sub_x"}}}
    bodies = []
    for i in range(count):
        document["id"] = f"evt_bench_{i:08d}"
        document["created"] = 1_700_000_000 + i // 10
        bodies.append(json.dumps(document).encode())
    return bodies


def insert_commit_baseline(database_url: str, count: int) -> float:
    """Rows/s of one INSERT + COMMIT per row on one connection."""
    payload = make_bodies(1)[0]
    digest = hashlib.sha256(payload).digest()
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.bench_baseline (id text PRIMARY KEY,"
                     " payload bytea, sha bytea, received_at timestamptz DEFAULT now())")
        conn.commit()
        started = time.perf_counter()
        for i in range(count):
            conn.execute("INSERT INTO public.bench_baseline (id, payload, sha) VALUES (%s, %s, %s)",
                         (f"b{i}", payload, digest))
            conn.commit()
        return count / (time.perf_counter() - started)


# Signed requests older than this are signed again before they are sent (the service's
# tolerance is 300 s; a long run at a low rate must not drift out of it).
RESIGN_AFTER_SECONDS = 240.0


def signed_request(body: bytes, port: int) -> bytes:
    """The whole HTTP/1.1 request for ``body``, signed now."""
    signature = sign(body, SECRET, int(time.time())).encode()
    return (
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Content-Type: application/json\r\nStripe-Signature: %s\r\nContent-Length: %d\r\n\r\n"
        % (port, signature, len(body))
    ) + body


class _Connection(asyncio.Protocol):
    """A keep-alive client connection: one request at a time, its response parsed by
    httptools (the load generator must cost little: it shares the cores with the service)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[int] | None = None
        self.open = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("closed before the answer"))

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.open = False
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(self.parser.get_status_code())

    def send(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.answer


async def post_all(port: int, requests: list[bytes], bodies: list[bytes],
                   concurrency: int, signed_at: float) -> tuple[float, list[float]]:
    """Send every pre-signed request over ``concurrency`` keep-alive connections (a 503 is
    sent again, signed anew); returns elapsed seconds and each request's latency."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    pending = iter(range(len(requests)))

    async def connect() -> _Connection:
        _, connection = await loop.create_connection(_Connection, "127.0.0.1", port)
        return connection

    async def worker() -> None:
        connection = await connect()
        for index in pending:
            request = requests[index]
            if time.time() - signed_at > RESIGN_AFTER_SECONDS:
                request = signed_request(bodies[index], port)
            while True:
                if not connection.open:
                    connection = await connect()
                started = time.perf_counter()
                status = await connection.send(request)
                if status == 200:
                    latencies.append(time.perf_counter() - started)
                    break
                if status != 503:
                    raise RuntimeError(f"unexpected status {status}")
                request = signed_request(bodies[index], port)
        if connection.transport is not None:
            connection.transport.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """The load generator's event loop: uvloop, as the service's (``ASYNCIO_LOOP=asyncio``
    for the standard loop, both sides)."""
    if os.environ.get("ASYNCIO_LOOP", "uvloop") == "uvloop":
        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def wait_published(database_url: str, count: int, timeout: float = 600) -> None:
    """Return once ``count`` events are stamped published. Polled every 5 ms: the poll's
    granularity is part of the measured time (a 50 ms poll added up to 50 ms, ~1.5% on
    average, to a 10,000-webhook run at 6,000/s, and more to a faster one)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM ingest.stripe_events"
                               " WHERE published_at IS NOT NULL").fetchone()
            if row is not None and row[0] >= count:
                return
            time.sleep(0.005)
    raise TimeoutError("events were not all published")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its running children (the copies of
    ``INGEST_PROCESSES``) so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(process_cpu_seconds(int(child)) for child in children)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(count: int, concurrency: int, baseline_rows: int, processes: int = 1,
        tree: Path = REPO_ROOT) -> dict[str, float]:
    """One measurement on a fresh stack; ``processes``: ``INGEST_PROCESSES`` (behind one port);
    ``tree``: the checkout whose ingest service is measured (another commit's, e.g. a
    ``git archive`` of it, to compare two commits in one run with the same load generator)."""
    bodies = make_bodies(count)
    with bench_stack() as stack:
        baseline = insert_commit_baseline(stack.database_url, baseline_rows)
        database_url = tree_database(stack.database_url, tree)
        http_port, admin_port = free_port(), free_port()
        env = dict(os.environ, DATABASE_URL=database_url, NATS_URL=stack.nats_url,
                   STRIPE_WEBHOOK_SECRETS=SECRET, INGEST_HTTP_PORT=str(http_port),
                   INGEST_GRPC_PORT=str(free_port()), INGEST_ADMIN_PORT=str(admin_port),
                   INGEST_HOST="127.0.0.1", LOG_LEVEL="WARNING",
                   INGEST_PROCESSES=str(processes))
        command = [sys.executable, "-m", "services.ingest"]
        if os.environ.get("BENCH_INGEST_SCRIPT"):  # e.g. a profiling wrapper
            command = [sys.executable, os.environ["BENCH_INGEST_SCRIPT"]]
        service = subprocess.Popen(command, env=env, cwd=tree)
        try:
            wait_for_port(http_port, 60, service)
            wait_for_copies(service.pid, processes)
            # Signed before the clock starts (the load generator shares the cores).
            signed_at = time.time()
            requests = [signed_request(body, http_port) for body in bodies]
            started = time.perf_counter()
            cpu_before = process_cpu_seconds(service.pid)
            servers = [pid for pid in (stack.postgres_pid, stack.nats_pid) if pid]
            servers_before = [process_cpu_seconds(pid) for pid in servers]
            client_before = time.process_time()
            posting, latencies = run_loop(
                post_all(http_port, requests, bodies, concurrency, signed_at)
            )
            client_cpu = time.process_time() - client_before
            wait_published(database_url, count)
            total = time.perf_counter() - started
            cpu = process_cpu_seconds(service.pid) - cpu_before
            servers_cpu = [
                process_cpu_seconds(pid) - before
                for pid, before in zip(servers, servers_before, strict=True)
            ]
            commits = commit_figures(admin_port) if processes == 1 else {}
            if os.environ.get("BENCH_INGEST_SCRIPT"):
                service.send_signal(signal.SIGUSR1)
                service.wait(30)
        finally:
            service.terminate()
            service.wait(30)
    result = {
        "webhooks": count,
        "concurrency": concurrency,
        "ingest_processes": processes,
        "archived_per_s": count / posting,
        "archived_and_published_per_s": count / total,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "baseline_insert_commit_per_s": baseline,
        # CPU the ingest process spent per webhook: on a shared machine far steadier than
        # the rates, which also depend on what else runs (the load generator included).
        "ingest_cpu_us_per_webhook": cpu / count * 1e6,
        # The load generator shares the machine: its CPU per webhook, to see who saturates.
        "client_cpu_us_per_webhook": client_cpu / count * 1e6,
        # PostgreSQL (every backend) and NATS, same window.
        "postgres_cpu_us_per_webhook": (servers_cpu[0] if servers_cpu else 0) / count * 1e6,
        "nats_cpu_us_per_webhook": (servers_cpu[1] if len(servers_cpu) > 1 else 0) / count * 1e6,
        "load_average_1m": os.getloadavg()[0],
        **commits,
    }
    result["ratio_to_baseline"] = result["archived_and_published_per_s"] / baseline
    return result


def commit_figures(admin_port: int) -> dict[str, float]:
    """The service's group commits over its life (the run, bar a few start-up sweeps), from its
    metrics: count, mean batch size, mean and bucket-bound p50 / p99 duration in ms (what a
    webhook's latency holds besides its wait in the queue). Empty when the service (another
    commit's) does not export ``ingest_archive_commit_seconds``."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    buckets: list[tuple[float, float]] = []
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("ingest_archive_commit_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
        elif line.startswith(("ingest_archive_commit_seconds_", "ingest_archive_batch_size_")):
            name, value = line.rsplit(" ", 1)
            sums[name] = float(value)
    count = sums.get("ingest_archive_commit_seconds_count", 0.0)
    if not count:
        return {}

    def bound_of(fraction: float) -> float:
        return next((b for b, c in sorted(buckets) if c >= fraction * count), float("inf"))

    return {
        "group_commits": count,
        "mean_batch_size": sums["ingest_archive_batch_size_sum"] / count,
        "commit_mean_ms": sums["ingest_archive_commit_seconds_sum"] / count * 1000,
        "commit_p50_ms_at_most": bound_of(0.5) * 1000,
        "commit_p99_ms_at_most": bound_of(0.99) * 1000,
    }


def tree_database(bench_url: str, tree: Path) -> str:
    """The database the service of ``tree`` runs against, migrated by ``tree``'s own
    migrations: another commit's service must see its own schema (a migration is often the
    change measured), not this checkout's head."""
    if tree.resolve() == REPO_ROOT:
        return bench_url
    server, _ = bench_url.rsplit("/", 1)
    with psycopg.connect(libpq_url(f"{server}/postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE bench_tree")
    url = f"{server}/bench_tree"
    subprocess.run([sys.executable, "-m", "services.common.migrate", "upgrade"], cwd=tree,
                   env=dict(os.environ, DATABASE_URL=url), check=True)
    return url


def wait_for_copies(pid: int, processes: int, timeout: float = 120) -> None:
    """With ``INGEST_PROCESSES`` > 1, wait until every copy listens (the port answers as soon
    as the first one does); approximated by every copy's admin site having started."""
    if processes <= 1:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        if len(children) == processes and all(_listens(int(c)) for c in children):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{processes} ingest processes did not all start")


def _listens(pid: int) -> bool:
    """Whether ``pid`` holds at least 3 listening TCP sockets (HTTP, admin, gRPC)."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    listening.add(fields[9])
    try:
        fds = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return sum(1 for fd in fds if fd.startswith("socket:[") and fd[8:-1] in listening) >= 3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhooks", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--baseline-rows", type=int, default=3_000)
    parser.add_argument(
        "--processes",
        default="1",
        help="INGEST_PROCESSES per measurement, comma-separated (e.g. 1,2,2,1: one run each,"
        " in this order; rates compared with the first)",
    )
    parser.add_argument(
        "--trees",
        default="",
        help="the service's checkout per measurement, comma-separated, aligned with"
        " --processes (default: this one), e.g. /tmp/base,.,.,/tmp/base",
    )
    args = parser.parse_args(argv)
    counts = [int(p) for p in args.processes.split(",")]
    trees = [Path(t).resolve() for t in args.trees.split(",")] if args.trees else []
    if trees and len(trees) != len(counts):
        parser.error("--trees needs one checkout per --processes entry")
    results = []
    for index, processes in enumerate(counts):
        tree = trees[index] if trees else REPO_ROOT
        result = run(args.webhooks, args.concurrency, args.baseline_rows, processes, tree)
        results.append(result)
        print(f"ingest benchmark, INGEST_PROCESSES={processes}, service from {tree}", flush=True)
        for key, value in result.items():
            print(f"  {key:32s} {value:12.1f}", flush=True)
    if len(results) > 1:
        first = results[0]["archived_and_published_per_s"]
        print("webhooks/s relative to the first run: " + ", ".join(
            f"{int(r['ingest_processes'])} proc {r['archived_and_published_per_s'] / first:.2f}x"
            f" (p99 {r['p99_ms']:.0f} ms, {r['ratio_to_baseline']:.2f}x its baseline)"
            for r in results
        ))


if __name__ == "__main__":
    main()
