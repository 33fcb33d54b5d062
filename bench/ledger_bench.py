"""Ledger throughput: ``ReplayArchive`` into an empty ledger against a plain ``COPY`` of the
same number of rows with billing_events' columns (the physical limit), measured in one run;
optionally live consumption from JetStream.

A simulator world is streamed (``iter_events``, bounded memory) and loaded into
``ingest.stripe_events`` with COPY. Ingest and ledger run as real service processes
(``python -m services.ingest`` / ``services.ledger``) on a throw-away PostgreSQL and NATS, and
the replay is one gRPC call, exactly as an operator would make it.

Defaults run in a few minutes; ``--tenants 50000 --max-events 1000000`` is the full size.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import nats
import psycopg
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc

from bench import ingest_bench
from bench.stack import BenchStack, bench_stack
from services.common.config import libpq_url
from services.common.grpc_client import aio_channel
from services.common.migrate import upgrade_to_head
from services.common.nats_link import STREAM_NAME, subject_for
from services.devstack.embedded import free_port
from services.ledger.consumer import ConsumerOptions, consumer_config
from services.ledger.settings import LedgerSettings
from services.ledger.tables import BILLING_EVENT_COLUMNS, REBUILT_TABLES, q
from services.stripe_simulator import WorldConfig, iter_events, serialize_event

REPO_ROOT = Path(__file__).resolve().parents[1]


def world_rows(config: WorldConfig, limit: int | None) -> Iterator[tuple[object, ...]]:
    """Archive rows for the world's events, in Stripe order, at most ``limit``."""
    now = datetime.now(UTC)
    for i, event in enumerate(iter_events(config)):
        if limit is not None and i >= limit:
            return
        body = serialize_event(event)
        yield (
            event["id"],
            event["type"],
            event["api_version"],
            datetime.fromtimestamp(event["created"], UTC),
            False,
            body,
            hashlib.sha256(body).digest(),
            "webhook",
            now,
        )


def load_archive(database_url: str, config: WorldConfig, limit: int | None) -> int:
    """COPY the world into ingest.stripe_events (already published: no outbox work)."""
    count = 0
    with psycopg.connect(libpq_url(database_url)) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY ingest.stripe_events (event_id, event_type, api_version, stripe_created_at,"
            " livemode, payload, payload_sha256, recovery_source, published_at) FROM STDIN"
        ) as copy:
            for row in world_rows(config, limit):
                copy.write_row(row)
                count += 1
        conn.commit()
    return count


def settle_archive(database_url: str) -> float:
    """VACUUM (ANALYZE) the archive just loaded; returns its seconds.

    An archive filled by webhooks over months has been vacuumed by autovacuum as it grew. One
    COPYed a moment ago has not: its first autovacuum (a full pass over the 1M-event heap)
    would fall inside the timed replay and be counted as the replay's cost. The bench's
    archive is settled first, as a real one is."""
    started = time.perf_counter()
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) ingest.stripe_events")
    return time.perf_counter() - started


def copy_baseline(database_url: str, rows: int) -> float:
    """Rows/s of a plain COPY of ``rows`` billing_events-shaped rows into a scratch table."""
    cols = ", ".join(BILLING_EVENT_COLUMNS)
    with psycopg.connect(libpq_url(database_url)) as conn:
        sample = conn.execute(
            f"SELECT {cols} FROM ledger.billing_events ORDER BY id LIMIT 100000"  # noqa: S608
        ).fetchall()
        conn.execute(
            "CREATE TABLE public.bench_copy_baseline"
            " (LIKE ledger.billing_events INCLUDING DEFAULTS)"
        )
        conn.commit()
        data = [
            (f"{row[0]}_{i}", *row[1:])
            for i in range(0, rows // max(len(sample), 1) + 1)
            for row in sample
        ][:rows]
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY public.bench_copy_baseline ({cols}) FROM STDIN") as copy,
        ):
            for row in data:
                copy.write_row(row)
        conn.commit()
        return len(data) / (time.perf_counter() - started)


def spawn(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = open(log, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", module], env=env, stdout=handle, stderr=handle, cwd=REPO_ROOT
    )


def wait_healthy(url: str, child: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"service exited with {child.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - loopback
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def peak_rss_mib(pid: int) -> list[float]:
    """Peak resident memory (VmHWM) of a process, then of each of its child processes (the
    replay's projection workers), in MiB; Linux ``/proc`` only (empty elsewhere)."""

    def hwm(one: int) -> float | None:
        try:
            status = Path(f"/proc/{one}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    found = [hwm(pid), *(hwm(int(c)) for c in children)]
    return [value for value in found if value is not None]


def count(database_url: str, sql: str, *params: object) -> int:
    with psycopg.connect(libpq_url(database_url)) as conn:
        row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
        return int(row[0]) if row else 0


@dataclass(frozen=True)
class ReplayPorts:
    """The ports of the ingest + ledger pair a replay bench starts (ledger not consuming)."""

    ingest_http: int
    ingest_grpc: int
    ingest_admin: int
    ledger_grpc: int
    ledger_admin: int

    @classmethod
    def free(cls) -> ReplayPorts:
        return cls(*(free_port() for _ in range(5)))


def replay_env(
    stack: BenchStack, ports: ReplayPorts, batch_size: int, workers: int
) -> dict[str, str]:
    """The environment of that pair: this bench and bench/ledger_replay_profile.py start the
    same stack, so it is written once."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=stack.database_url,
        NATS_URL=stack.nats_url,
        STRIPE_WEBHOOK_SECRETS="whsec_bench",
        INGEST_HTTP_PORT=str(ports.ingest_http),
        INGEST_GRPC_PORT=str(ports.ingest_grpc),
        INGEST_ADMIN_PORT=str(ports.ingest_admin),
        INGEST_GRPC_ADDR=f"127.0.0.1:{ports.ingest_grpc}",
        LEDGER_GRPC_PORT=str(ports.ledger_grpc),
        LEDGER_ADMIN_PORT=str(ports.ledger_admin),
        LEDGER_CONSUME="0",
        LEDGER_REPLAY_BATCH_SIZE=str(batch_size),
        LEDGER_REPLAY_WORKERS=str(workers),
        LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    )
    return env


async def replay(port: int) -> ledger_pb2.ReplayArchiveResponse:
    async with aio_channel(f"127.0.0.1:{port}") as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        answer: ledger_pb2.ReplayArchiveResponse = await stub.ReplayArchive(
            ledger_pb2.ReplayArchiveRequest()
        )
        return answer


async def publish_archive(database_url: str, nats_url: str, limit: int) -> int:
    """Publish the first ``limit`` archived events to JetStream (as ingest's outbox would)."""
    client = await nats.connect(nats_url)
    js = client.jetstream(timeout=10)
    sent = 0
    with psycopg.connect(libpq_url(database_url)) as conn:
        cur = conn.cursor(name="archive")
        cur.execute(
            "SELECT event_id, event_type, payload FROM ingest.stripe_events"
            " ORDER BY stripe_created_at, event_id LIMIT %s",
            (limit,),
        )
        while rows := cur.fetchmany(1000):
            await asyncio.gather(
                *(
                    js.publish(subject_for(t), bytes(p), headers={"Nats-Msg-Id": i})
                    for i, t, p in rows
                )
            )
            sent += len(rows)
    await client.close()
    return sent


@dataclass(frozen=True)
class LiveRun:
    processes: int
    batch: int | None  # LEDGER_BATCH_SIZE (None: the service's default)
    rate: float  # events/s including the process start
    steady: float  # billing rows/s from the first row applied
    resumed: float  # events/s from the resume of the paused consumer (the ledger bound)
    digest: str  # of every rebuilt ledger table's compared columns


async def create_paused_consumer(nats_url: str, live_env: dict[str, str]) -> str:
    """The live run's durable consumer, exactly as the ledger would create it from
    ``live_env``, but paused: the ledger starts, binds and waits without consuming, so the
    rate measured from :func:`resume_when_waiting` is consumption alone, without the
    process's start (imports, connections: ~1 s of a 5 s run, issue 12). Returns its name."""
    with mock.patch.dict(os.environ, live_env):
        config = consumer_config(ConsumerOptions.from_settings(LedgerSettings.from_env()))
    config.pause_until = "2999-01-01T00:00:00Z"
    client = await nats.connect(nats_url)
    try:
        await client.jetstream().add_consumer(STREAM_NAME, config)
    finally:
        await client.close()
    return str(config.durable_name)


async def resume_when_waiting(
    nats_url: str, consumer: str, child: subprocess.Popen[bytes], timeout: float = 120
) -> float:
    """Once the ledger has a pull request waiting on the paused consumer (it is bound and
    fetching), resume the consumer; returns ``time.perf_counter()`` at the resume."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        deadline = time.monotonic() + timeout
        while not (await js.consumer_info(STREAM_NAME, consumer)).num_waiting:
            if child.poll() is not None:
                raise RuntimeError("live ledger exited")
            if time.monotonic() > deadline:
                raise TimeoutError("the ledger never fetched from its consumer")
            await asyncio.sleep(0.02)
        resumed = time.perf_counter()
        await js.resume_consumer(STREAM_NAME, consumer)
        return resumed
    finally:
        await client.close()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of one process so far (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the ledger's projection worker is a child process)."""
    found, todo = [], [pid]
    while todo:
        one = todo.pop()
        found.append(one)
        try:
            tasks = os.listdir(f"/proc/{one}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                todo.extend(
                    int(c) for c in Path(f"/proc/{one}/task/{task}/children").read_text().split()
                )
            except OSError:
                continue
    return found


def run_delay_seconds(pid: int) -> float:
    """Seconds the threads of ``pid`` have spent runnable but waiting for a core (the
    scheduler's ``run_delay``, ``/proc/<pid>/task/*/schedstat``): CPU starvation, as
    opposed to waiting for a peer."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for task in tasks:
        try:
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


class CpuWatch:
    """CPU seconds, and seconds waiting for a core, of groups of processes (the live ledger,
    its PostgreSQL backends, nats-server) from a mark on, sampled while the bench polls:
    which of them is busy, and how busy, says where a live run waits (issue 12). A process
    first seen after the mark counts from zero; one that exits keeps its last sample."""

    def __init__(self) -> None:
        self.last: dict[int, tuple[float, float]] = {}
        self.base: dict[int, tuple[float, float]] | None = None
        self.groups: dict[str, set[int]] = {}

    def sample(self, group: str, pids: Iterator[int] | list[int]) -> None:
        members = self.groups.setdefault(group, set())
        for pid in pids:
            used = cpu_seconds(pid)
            if used is not None:
                self.last[pid] = (used, run_delay_seconds(pid))
                members.add(pid)

    def mark(self) -> None:
        self.base = dict(self.last)

    def since_mark(self, group: str, which: int = 0) -> float:
        """CPU seconds (``which`` 0) or seconds waiting for a core (1) since the mark."""
        base = self.base or {}
        return sum(
            self.last[p][which] - base.get(p, (0.0, 0.0))[which] for p in self.groups.get(group, ())
        )


def machine_busy() -> tuple[float, float]:
    """(busy, all) jiffies of every core so far (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


class BackendStates:
    """What the live ledger's PostgreSQL backends are doing, sampled every 20 ms by a
    thread: running a statement (and on what it waits), or idle in the transaction waiting
    for the ledger's next statement (``ClientRead``), or idle between batches."""

    def __init__(self, live_url: str) -> None:
        self.url = live_url
        self.counts: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with psycopg.connect(
            libpq_url(self.url), autocommit=True, application_name="bench"
        ) as conn:
            while not self.stop.wait(0.02):
                for state, kind, event in conn.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'"
                    " AND application_name NOT LIKE 'bench%'"
                ).fetchall():
                    key = f"{state}" + (f" {kind}:{event}" if kind else "")
                    self.counts[key] = self.counts.get(key, 0) + 1

    def summary(self) -> str:
        total = sum(self.counts.values()) or 1
        top = sorted(self.counts.items(), key=lambda kv: -kv[1])[:6]
        return ", ".join(f"{key} {n * 100 / total:.0f}%" for key, n in top)


def scrape_phases(admin_port: int) -> str:
    """The live ledger's batch figures from its /metrics (``ledger_consumer_phase_seconds``,
    batch sizes, event-loop lag): mean per batch, or why there are none."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError as exc:
        return f"no metrics ({exc})"
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name.endswith(("_sum", "_count")) or "_sum{" in name or "_count{" in name:
            sums[name] = float(value)

    def pair(metric: str, labels: str = "") -> tuple[float, float]:
        return sums.get(f"{metric}_sum{labels}", 0.0), sums.get(f"{metric}_count{labels}", 0.0)

    size, batches = pair("ledger_consumer_batch_size")
    if not batches:
        return "no batch figures exported (ledger_consumer_batch_size)"
    parts = [f"{batches:.0f} batches, mean {size / batches:,.0f} messages"]
    for phase in ("fetch", "project", "wait_write", "write", "write_loop_cpu"):
        total, n = pair("ledger_consumer_phase_seconds", f'{{phase="{phase}"}}')
        if n:
            parts.append(f"{phase} {total * 1e3 / n:.1f} ms x{n:.0f}")
    lag, probes = pair("ledger_event_loop_lag_seconds")
    if probes:
        parts.append(f"event-loop timer lag mean {lag * 1e3 / probes:.2f} ms ({probes:.0f} probes)")
    return "; ".join(parts)


def ledger_digest(database_url: str) -> str:
    """One hash over every rebuilt table (the columns VerifyLedger compares), in key order."""
    digest = hashlib.sha256()
    with psycopg.connect(libpq_url(database_url)) as conn:
        for table, key, ignored in REBUILT_TABLES:
            columns = [
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                    " 'ledger' AND table_name = %s ORDER BY ordinal_position",
                    (table,),
                )
                if row[0] not in ignored
            ]
            listed = ", ".join(q(c) for c in columns)
            cur = conn.cursor(name=f"digest_{table}")
            cur.execute(f"SELECT {listed} FROM ledger.{table} ORDER BY {q(key)}")  # noqa: S608
            while rows := cur.fetchmany(5000):
                for row in rows:
                    digest.update(repr(row).encode())
    return digest.hexdigest()


def analyzed_during(database_url: str, elapsed: float) -> str:
    """When autovacuum first analyzed the live ledger's billing_events, in seconds before the
    end of the run: a fresh ledger is planned without statistics until then, so a live rate
    measured partly with them is not the same measurement (issue 12, "Fifth pass")."""
    with psycopg.connect(libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM now() - last_autoanalyze) FROM pg_stat_user_tables"
            " WHERE schemaname = 'ledger' AND relname = 'billing_events'"
        ).fetchone()
    if row is None or row[0] is None:
        return "billing_events not analyzed during the run"
    return (
        f"billing_events autoanalyzed {float(row[0]):.1f}s before the end of the {elapsed:.1f}s run"
    )


def live_run(
    stack: BenchStack,
    env: dict[str, str],
    logs: Path,
    sent: int,
    expected: int,
    spec: LiveSpec,
    index: int,
    detail: bool = False,
) -> LiveRun:
    """A fresh ledger database fed from the stream by ``spec.processes`` ledger processes
    (``LEDGER_PROCESSES``) on one new durable consumer; returns rates and a digest."""
    processes, batch = spec.processes, spec.batch
    name = f"bench_live_{index}"
    live_url = stack.database_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(libpq_url(stack.database_url), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    upgrade_to_head(live_url)
    admin_port = free_port()
    live_env = dict(
        env,
        DATABASE_URL=live_url,
        LEDGER_CONSUME="1",
        LEDGER_CONSUMER_NAME=f"live_{index}",
        LEDGER_PROCESSES=str(processes),
        LEDGER_GRPC_PORT=str(free_port()),
        LEDGER_ADMIN_PORT=str(admin_port),
        # A pull request parked on a paused consumer is not served when it resumes: it
        # expires (408) and the next request gets the messages. The fetch timeout bounds how
        # long a request parks, so 0.1 s keeps that wait, which only a paused start has, out
        # of the measured consumption; during a catch-up every request is a no-wait one, and
        # the timeout changes nothing there.
        LEDGER_FETCH_TIMEOUT="0.1",
    )
    if batch is not None:
        live_env["LEDGER_BATCH_SIZE"] = str(batch)
    if spec.workers is not None:
        live_env["LEDGER_CONSUMER_WORKERS"] = str(spec.workers)
    if spec.ramp is not None:
        live_env["LEDGER_BATCH_RAMP_FROM"] = str(spec.ramp)
    watch = CpuWatch()
    states = BackendStates(live_url)
    machine: list[tuple[float, float]] = []
    # One connection polls every 50 ms (a new connection every 200 ms made the end of a
    # 2-3 s run up to 0.2 s late, and cost a backend start each time).
    poll = psycopg.connect(libpq_url(live_url), application_name="bench", autocommit=True)
    consumer = asyncio.run(create_paused_consumer(stack.nats_url, live_env))
    started = time.perf_counter()
    child = spawn("services.ledger", live_env, logs / f"bench-live-{index}.log")
    try:
        resumed = asyncio.run(resume_when_waiting(stack.nats_url, consumer, child))
        # Also timed from the first row applied: on a loaded machine the process start
        # (imports, connections) takes seconds that say nothing about consumption.
        first: tuple[float, int] | None = None
        first_cpu = None  # the ledger process's CPU when the first row was seen
        while True:
            done, backends = rows_and_backends(poll)
            watch.sample("ledger", process_tree(child.pid))
            watch.sample("backends", backends)
            if stack.nats_pid is not None:
                watch.sample("nats", [stack.nats_pid])
            if stack.postgres_pid is not None:
                watch.sample("postgres", process_tree(stack.postgres_pid))
            if done >= expected:
                break
            if child.poll() is not None:
                raise RuntimeError("live ledger exited")
            if first is None and done > 0:
                first = (time.perf_counter(), done)
                first_cpu = cpu_seconds(child.pid)
                watch.mark()
                machine.append(machine_busy())
                if detail:
                    states.thread.start()
            time.sleep(poll_pause(first, done, expected))
        finished = time.perf_counter()
        end_cpu = cpu_seconds(child.pid)
        machine.append(machine_busy())
        phases = scrape_phases(admin_port)
        peak = peak_rss_mib(child.pid)
    finally:
        poll.close()
        states.stop.set()
        if states.thread.is_alive():
            states.thread.join(5)
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
    elapsed = finished - started
    rate = sent / elapsed
    from_resume = sent / (finished - resumed)
    steady = 0.0
    if first is not None and finished > first[0]:
        steady = (expected - first[1]) / (finished - first[0])
    print(
        f"live, LEDGER_PROCESSES={processes} LEDGER_BATCH_SIZE={batch or 'default'}"
        f" LEDGER_CONSUMER_WORKERS={'default' if spec.workers is None else spec.workers}"
        f" LEDGER_BATCH_RAMP_FROM={'default' if spec.ramp is None else spec.ramp}:"
        f" {sent} events consumed from JetStream in"
        f" {elapsed:.1f}s = {rate:,.0f} events/s (incl. process start);"
        f" from the resume of its consumer (the ledger bound and waiting):"
        f" {finished - resumed:.2f}s = {from_resume:,.0f} events/s;"
        f" from the first row applied: {steady:,.0f} billing rows/s"
        + (f" (first {first[1]} rows {first[0] - started:.1f}s after the start)" if first else "")
        + ";"
        f" load average {os.getloadavg()[0]:.1f}; {analyzed_during(live_url, elapsed)};"
        " peak RSS (VmHWM) " + ", ".join(f"{mib:.0f} MiB" for mib in peak)
    )
    if processes == 1 and end_cpu is not None:  # with copies the CPU is in the children
        line = f"live ledger process CPU: {end_cpu * 1e6 / sent:.0f} us/event incl. start"
        if first is not None and first_cpu is not None and expected > first[1]:
            per_row = (end_cpu - first_cpu) * 1e6 / (expected - first[1])
            line += f", {per_row:.0f} us/billing row from the first row applied"
        print(line)
    if first is not None and finished > first[0] and expected > first[1]:
        span, rows = finished - first[0], expected - first[1]
        groups = (
            ("ledger incl. its worker", "ledger"),
            ("its PostgreSQL backends", "backends"),
            ("PostgreSQL all", "postgres"),
            ("nats-server", "nats"),
        )
        print(
            "from the first row applied, cores busy (us per billing row): "
            + ", ".join(
                f"{label} {watch.since_mark(group) / span:.2f}"
                f" ({watch.since_mark(group) * 1e6 / rows:.0f})"
                for label, group in groups
            )
        )
        (busy0, all0), (busy1, all1) = machine
        cores = os.cpu_count() or 1
        print(
            "  waiting for a core (runnable, not running; cores): "
            + ", ".join(
                f"{label} {watch.since_mark(group, 1) / span:.2f}" for label, group in groups
            )
            + f"; machine busy {cores * (busy1 - busy0) / max(all1 - all0, 1):.2f} of"
            f" {cores} cores"  # /proc/stat's first line sums all cores
        )
        if detail:
            print(f"  the ledger's PostgreSQL backends (sampled every 20 ms): {states.summary()}")
    print(f"live batches: {phases}")
    return LiveRun(processes, batch, rate, steady, from_resume, ledger_digest(live_url))


def poll_pause(first: tuple[float, int] | None, done: int, expected: int) -> float:
    """Seconds until the live run's next poll: 50 ms until the first row and once the end is
    near, in between half of the time the rate so far says is left (at most 0.25 s).

    The poll's ``count(*)`` scans billing_events (~5 ms at 80,000 rows): at a fixed 50 ms it
    took a few percent of a core from the two the measured ledger runs on. A poll that comes
    late can only lower the measured rate, never raise it.
    """
    if first is None or done <= first[1]:
        return 0.05
    rate = (done - first[1]) / max(time.perf_counter() - first[0], 1e-6)
    return min(0.25, max(0.05, (expected - done) / rate / 2))


def rows_and_backends(conn: psycopg.Connection[Any]) -> tuple[int, list[int]]:
    """Billing rows in the live ledger so far, and the pids of the other sessions on its
    database (the ledger's backends), read on ``conn`` (autocommit: each call sees now)."""
    done = conn.execute("SELECT count(*) FROM ledger.billing_events").fetchone()
    pids = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_type = 'client backend' AND application_name NOT LIKE 'bench%'"
    ).fetchall()
    return (int(done[0]) if done else 0), [int(p[0]) for p in pids]


@dataclass(frozen=True)
class LiveSpec:
    """One live run of ``--live-processes``: ``P[:BATCH[:WORKERS[:RAMP]]]``."""

    processes: int
    batch: int | None
    workers: int | None  # LEDGER_CONSUMER_WORKERS (None: the service's default)
    ramp: int | None = None  # LEDGER_BATCH_RAMP_FROM (None: the service's default)

    @classmethod
    def parse(cls, item: str) -> LiveSpec:
        processes, *rest = item.split(":")
        batch, workers, ramp = ([int(v) if v else None for v in rest] + [None] * 3)[:3]
        return cls(int(processes), batch, workers, ramp)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="ledger_bench", description=__doc__)
    parser.add_argument("--tenants", type=int, default=1000, help="simulated accounts")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-events", type=int, default=None, help="cap the archive size")
    parser.add_argument("--batch-size", type=int, default=2000, help="replay batch size")
    parser.add_argument("--workers", type=int, default=1, help="replay projection processes")
    # By default the live run is a sustained one (80,000 events: ~5 s of consumption, not
    # mostly the ramp and a first batch nothing overlaps), compared with ingest measured in
    # the same run (issue 12, goal 2).
    parser.add_argument(
        "--live-events", type=int, default=80000, help="events for the live test (0: skip)"
    )
    parser.add_argument(
        "--ingest-webhooks",
        type=int,
        default=10000,
        help="also measure ingest (bench.ingest_bench, concurrency 64) with this many webhooks"
        " and print live consumption / ingest rate (0: skip)",
    )
    parser.add_argument(
        "--live-processes",
        default="1",
        help="LEDGER_PROCESSES of each live run, comma-separated, each optionally with its"
        " LEDGER_BATCH_SIZE after a colon, LEDGER_CONSUMER_WORKERS after a second one and"
        " LEDGER_BATCH_RAMP_FROM after a third (e.g."
        " 1,2 or 1:256,1:2000,2:2000 or 1::0,1::1: one vs two ledger processes on one durable"
        " consumer, batch sizes, the projection in a thread vs a process, same stream,"
        " compared; the first run's rate is the one compared with ingest)",
    )
    parser.add_argument(
        "--ingest-processes", type=int, default=1, help="INGEST_PROCESSES of the ingest run"
    )
    parser.add_argument(
        "--live-detail",
        action="store_true",
        help="also sample the live ledger's PostgreSQL backends' states every 20 ms (a query"
        " each time: it costs the machine CPU, so leave it off when comparing with a tree"
        " that does not sample)",
    )
    args = parser.parse_args(argv)
    live_processes = [LiveSpec.parse(item) for item in args.live_processes.split(",")]
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    config = WorldConfig(seed=args.seed, tenants=args.tenants, months=args.months)
    runs: list[LiveRun] = []

    with bench_stack() as stack:
        logs = Path(os.environ.get("BENCH_LOG_DIR", tempfile.gettempdir()))
        started = time.perf_counter()
        archived = load_archive(stack.database_url, config, args.max_events)
        print(
            f"archive: {archived} events loaded by COPY in {time.perf_counter() - started:.1f}s,"
            f" then VACUUM (ANALYZE) in {settle_archive(stack.database_url):.1f}s"
        )

        ports = ReplayPorts.free()
        env = replay_env(stack, ports, args.batch_size, args.workers)
        children = [spawn("services.ingest", env, logs / "bench-ingest.log")]
        try:
            wait_healthy(f"http://127.0.0.1:{ports.ingest_admin}/healthz", children[0])
            children.append(spawn("services.ledger", env, logs / "bench-ledger.log"))
            wait_healthy(f"http://127.0.0.1:{ports.ledger_admin}/healthz", children[1])

            answer = asyncio.run(replay(ports.ledger_grpc))
            replay_rate = answer.examined / answer.seconds
            rows = count(stack.database_url, "SELECT count(*) FROM ledger.billing_events")
            print(
                f"replay: {answer.examined} events, {answer.applied} billing_events rows in"
                f" {answer.seconds:.1f}s = {replay_rate:,.0f} events/s"
                f" (workers={args.workers}, batch={args.batch_size});"
                f" the end after the last batch (indexes, refresh, rebuild)"
                f" {answer.finish_seconds:.1f}s"
            )
            again = asyncio.run(replay(ports.ledger_grpc))
            print(
                f"second replay (idempotent): applied {again.applied},"
                f" {again.examined / again.seconds:,.0f} events/s"
            )
            print(
                "peak RSS (VmHWM) after both replays: ledger "
                + ", ".join(f"{mib:.0f} MiB" for mib in peak_rss_mib(children[1].pid))
                + f"; ingest {max(peak_rss_mib(children[0].pid), default=0):.0f} MiB"
            )
            copy_rate = copy_baseline(stack.database_url, answer.examined)
            print(f"COPY baseline: {copy_rate:,.0f} rows/s into a billing_events-shaped table")
            print(f"ratio replay/COPY: {replay_rate / copy_rate:.3f} ({rows} rows)")

            if args.live_events:
                sent = asyncio.run(
                    publish_archive(stack.database_url, stack.nats_url, args.live_events)
                )
                expected = count(
                    stack.database_url,
                    "SELECT count(*) FROM ledger.billing_events b JOIN (SELECT event_id"
                    " FROM ingest.stripe_events ORDER BY stripe_created_at, event_id"
                    " LIMIT %s) e ON e.event_id = b.stripe_event_id",
                    sent,
                )
                for index, spec in enumerate(live_processes):
                    runs.append(
                        live_run(stack, env, logs, sent, expected, spec, index, args.live_detail)
                    )
                if len(runs) > 1:
                    first = runs[0]
                    print(
                        "live relative to the first run (same stream, own database and durable"
                        " consumer each): "
                        + ", ".join(
                            f"{r.processes} proc batch {r.batch} {r.resumed / first.resumed:.2f}x"
                            f" ({r.rate / first.rate:.2f}x incl. start,"
                            f" {r.steady / first.steady:.2f}x from the first row)"
                            for r in runs
                        )
                    )
                    same = all(r.digest == first.digest for r in runs)
                    print(
                        "ledger tables identical across runs (billing rows, unsupported,"
                        f" read models): {'yes' if same else 'NO'}"
                    )
        finally:
            for child in children:
                child.terminate()
            for child in children:
                try:
                    child.wait(20)
                except subprocess.TimeoutExpired:
                    child.kill()
    if runs and args.ingest_webhooks:
        # Its own stack, after this one is down: the two never compete for the cores.
        ingest = ingest_bench.run(args.ingest_webhooks, 64, 1000, args.ingest_processes)
        ingest_rate = ingest["archived_and_published_per_s"]
        live = runs[0]
        print(
            f"ingest: {ingest_rate:,.0f} webhooks/s archived + published"
            f" (p99 {ingest['p99_ms']:.1f} ms, INGEST_PROCESSES={args.ingest_processes});"
            # Consumption is measured from the resume of the paused consumer: the ledger is
            # started and bound first. Counting its start (imports, connections: ~1 s, a fifth
            # of an 80,000-event run) and from the first row applied are printed beside it.
            f" live consumption / ingest = {live.resumed / ingest_rate:.2f}"
            f" (counting the ledger's start: {live.rate / ingest_rate:.2f};"
            f" from the first row applied: {live.steady / ingest_rate:.2f})"
            + "".join(
                f"; LEDGER_PROCESSES={r.processes}: {r.resumed / ingest_rate:.2f}"
                for r in runs[1:]
            )
        )

if __name__ == "__main__":
    main(sys.argv[1:])
