"""Drift pass over a big simulator world, the simulator limiting requests like Stripe.

The world's history is loaded into the archive with COPY and replayed into the ledger (so the
ledger agrees with Stripe: a clean world, where any discrepancy is a false positive). Ingest,
ledger, drift and the simulator run as their own processes; the simulator serves a *packed*
world (``services.stripe_simulator.packed``: event bodies in a file, objects as bytes), so
100,000 customers fit in a few GB instead of ~17, with a request rate limit (``--rps``,
default 100 like live Stripe) and drift's own budget set to the same figure. Measured, in one
run:

* the first pass (walks Stripe's whole 30-day ``events.list``);
* a full pass after it (every subscription compared; events and resources from the marks);
* an incremental pass with nothing changed;
* the naive baseline: one retrieve per subscription at the same limit, measured on a sample
  of ``--naive-sample`` subscriptions and scaled to the world (labelled as such).

``--keep DIR`` keeps PostgreSQL's data (and NATS's) in ``DIR`` between runs: a run finding
the world already loaded, replayed and through its first pass measures the full and the
incremental pass only (the fill takes most of an hour at 100,000).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import stripe
from billing.drift.v1 import drift_pb2, drift_pb2_grpc

from bench.ledger_bench import REPO_ROOT, replay, spawn, wait_healthy
from bench.stack import bench_stack
from services.common.config import libpq_url
from services.common.db import make_async_engine
from services.common.grpc_client import aio_channel
from services.devstack.embedded import free_port
from services.drift import store
from services.drift.detector import HWM_EVENTS, HWM_RESOURCES
from services.stripe_simulator import WorldConfig
from services.stripe_simulator.ids import event_id
from services.stripe_simulator.packed import PackedWorld, is_packed, world_directory

#: Written in a kept stack's directory as the fill goes: the archive loaded, the ledger
#: replayed, the first pass done (or its marks seeded); a kept run resumes after the last.
LOADED, REPLAYED, FILLED = "loaded", "replayed", "filled"


def packed_world(config: WorldConfig, root: Path) -> Path:
    """``config``'s packed world under ``root``, generated in a child process when missing
    (its memory goes with the child; this process never holds the world). A plain child,
    not ``multiprocessing``: a spawned child re-imports the main module, and ``make bench``'s
    main module runs every benchmark."""
    directory = world_directory(root, config)
    if not is_packed(directory):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "services.stripe_simulator.packed",
                str(directory),
                f"--seed={config.seed}",
                f"--tenants={config.tenants}",
                f"--months={config.months}",
            ],
            check=True,
            cwd=REPO_ROOT,
        )
    return directory


def load_world(database_url: str, directory: Path) -> int:
    """COPY the world's events into ingest.stripe_events (already published), streamed from
    the packed world's file."""
    world = PackedWorld(directory, with_objects=False)
    meta = world.meta
    now = datetime.now(UTC)
    try:
        with psycopg.connect(libpq_url(database_url)) as conn, conn.cursor() as cur:
            with cur.copy(
                "COPY ingest.stripe_events (event_id, event_type, api_version, stripe_created_at,"
                " livemode, payload, payload_sha256, recovery_source, published_at) FROM STDIN"
            ) as copy:
                for i, body in world.stored_bodies():
                    copy.write_row(
                        (
                            event_id(world.tag, i + 1),
                            meta.type_names[meta.types[i]],
                            meta.version_names[meta.versions[i]],
                            datetime.fromtimestamp(meta.created[i], UTC),
                            False,
                            body,
                            hashlib.sha256(body).digest(),
                            "webhook",
                            now,
                        )
                    )
            conn.commit()
    finally:
        world.close()
    return len(meta.created)


async def seed_marks(database_url: str, directory: Path) -> int:
    """Drift's high-water marks set to the world's newest event, as a first pass over it
    would leave them (``--seed-marks``: the first pass is skipped, and said so)."""
    world = PackedWorld(directory, with_objects=False)
    newest = max(world.meta.created)
    world.close()
    engine = make_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            for name in (HWM_EVENTS, HWM_RESOURCES):
                await store.set_high_water_mark(conn, name, newest)
    finally:
        await engine.dispose()
    return newest


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident memory (``VmHWM``), in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far: what a pass costs each
    process, a figure the machine's load does not inflate the way it inflates wall time."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sim_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_sim/stats", timeout=10) as answer:  # noqa: S310
        stats: dict[str, Any] = json.loads(answer.read())
        return stats


def subscription_sample(url: str, size: int) -> list[str]:
    """The ids of ``size`` subscriptions (listed: the bench does not hold the world)."""
    client = stripe.StripeClient(
        "sk_test_bench", base_addresses={"api": url}, max_network_retries=10
    )
    ids: list[str] = []
    query: dict[str, Any] = {"status": "all", "limit": 100}
    while len(ids) < size:
        page = client.raw_request("get", "/v1/subscriptions", **query).data
        ids.extend(str(s["id"]) for s in page["data"])
        if not page["has_more"]:
            break
        query["starting_after"] = ids[-1]
    return ids[:size]


async def drift_pass(port: int, incremental: bool = False) -> tuple[drift_pb2.DriftRun, int]:
    async with aio_channel(f"127.0.0.1:{port}") as channel:
        stub = drift_pb2_grpc.DriftServiceStub(channel)
        run: drift_pb2.DriftRun = await stub.RunDriftPass(
            drift_pb2.RunDriftPassRequest(operator="bench", incremental=incremental),
            timeout=3600,
        )
        found = await stub.ListDiscrepancies(drift_pb2.ListDiscrepanciesRequest(page_size=5))
        return run, found.total_count


def naive_rate(url: str, ids: list[str]) -> float:
    """Retrieves per second, one subscription per request, sequential, honouring 429s."""
    client = stripe.StripeClient(
        "sk_test_bench", base_addresses={"api": url}, max_network_retries=10
    )
    started = time.perf_counter()
    for sid in ids:
        client.v1.subscriptions.retrieve(sid)
    return len(ids) / (time.perf_counter() - started)


def start_simulator(directory: Path, rps: float, logs: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The simulator in its own process, serving the packed world (like Stripe, it is not
    on drift's process; on this machine it still shares the same two cores)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIM_", "STRIPE_"))}
    handle = open(logs / "bench-drift-simulator.log", "ab")  # noqa: SIM115 - the child owns it
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.stripe_simulator",
            "--world-dir",
            str(directory),
            "--port",
            str(port),
            "--rate-limit",
            str(rps),
            "--rate-burst",
            str(int(rps)),
            "--log-level",
            "WARNING",
        ],
        env=env,
        stdout=handle,
        stderr=handle,
        cwd=REPO_ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(f"{url}/_sim/health", child, timeout=900)
    return child, url


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="drift_bench", description=__doc__)
    parser.add_argument("--tenants", type=int, default=1000, help="customers (one sub each)")
    parser.add_argument("--months", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rps", type=float, default=100.0, help="simulator and drift limit")
    parser.add_argument("--naive-sample", type=int, default=300)
    parser.add_argument(
        "--world-cache",
        type=Path,
        default=None,
        help="directory keeping generated (packed) worlds between runs; default: a temporary"
        " one, removed at the end",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="directory keeping the database between runs (filled once: load, replay, first"
        " pass); a kept, filled one measures the full and incremental passes only",
    )
    parser.add_argument(
        "--seed-marks",
        action="store_true",
        help="skip the first pass: set drift's marks to the newest event instead (what the"
        " first pass would leave; its ~35 minutes at 100,000 did not fit a session)",
    )
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    config = WorldConfig(seed=args.seed, tenants=args.tenants, months=args.months)
    scratch = Path(tempfile.mkdtemp(prefix="drift-bench-world-"))
    logs = Path(os.environ.get("BENCH_LOG_DIR", tempfile.gettempdir()))
    started = time.perf_counter()
    directory = packed_world(config, args.world_cache or scratch)
    generation_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"world: {args.tenants} customers packed in {time.perf_counter() - started:.1f}s"
        f" (peak RSS of its generation, when this run generated it: {generation_mb:.0f} MB)"
    )

    def stage(name: str) -> bool:
        """Whether the kept stack got past ``name`` (the stages are in order)."""
        later = (LOADED, REPLAYED, FILLED)[(LOADED, REPLAYED, FILLED).index(name) :]
        return args.keep is not None and any((args.keep / n).exists() for n in later)

    def reached(name: str) -> None:
        if args.keep is not None:
            (args.keep / name).write_text(f"{datetime.now(UTC).isoformat()}\n")

    filled = stage(FILLED)
    stack_cm = bench_stack(args.keep)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        with stack_cm as stack:
            began = time.perf_counter()
            sim, sim_url = start_simulator(directory, args.rps, logs)
            children["simulator"] = sim
            stats = sim_stats(sim_url)
            subs = int(stats["objects"].get("subscription", 0))
            print(
                f"simulator: {subs} subscriptions, {stats['events']} events, serving after"
                f" {time.perf_counter() - began:.1f}s"
            )
            if not stage(LOADED):
                began = time.perf_counter()
                loaded = load_world(stack.database_url, directory)
                print(f"archive: {loaded} events loaded in {time.perf_counter() - began:.1f}s")
                reached(LOADED)
            ports = {name: free_port() for name in ("ig", "ia", "lg", "la", "dg", "da")}
            env = dict(os.environ)
            env.update(
                DATABASE_URL=stack.database_url,
                NATS_URL=stack.nats_url,
                STRIPE_WEBHOOK_SECRETS="whsec_bench",
                STRIPE_API_KEY="sk_test_bench",
                STRIPE_API_BASE=sim_url,
                INGEST_HTTP_PORT=str(free_port()),
                INGEST_GRPC_PORT=str(ports["ig"]),
                INGEST_ADMIN_PORT=str(ports["ia"]),
                INGEST_GRPC_ADDR=f"127.0.0.1:{ports['ig']}",
                LEDGER_GRPC_PORT=str(ports["lg"]),
                LEDGER_ADMIN_PORT=str(ports["la"]),
                LEDGER_GRPC_ADDR=f"127.0.0.1:{ports['lg']}",
                LEDGER_CONSUME="0",
                DRIFT_GRPC_PORT=str(ports["dg"]),
                DRIFT_ADMIN_PORT=str(ports["da"]),
                DRIFT_INTERVAL="0",
                STRIPE_MAX_RPS=str(args.rps),
                LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            )
            for module, admin in (
                ("services.ingest", "ia"),
                ("services.ledger", "la"),
                ("services.drift", "da"),
            ):
                name = module.split(".")[1]
                child = spawn(module, env, logs / f"bench-drift-{name}.log")
                children[name] = child
                wait_healthy(f"http://127.0.0.1:{ports[admin]}/healthz", child)
            passes = [("full", False), ("incremental", True)]
            if not stage(REPLAYED):
                answer = asyncio.run(replay(ports["lg"]))
                print(f"ledger: {answer.examined} events replayed in {answer.seconds:.1f}s")
                reached(REPLAYED)
            if not filled and args.seed_marks:
                newest = asyncio.run(seed_marks(stack.database_url, directory))
                print(f"first pass NOT run: drift's marks seeded at {newest} (newest event)")
                reached(FILLED)
            elif not filled:
                passes.insert(0, ("first", False))
            figures = {}
            for label, incremental in passes:
                before = sim_stats(sim_url)
                cpu = {name: cpu_seconds(child.pid) for name, child in children.items()}
                load_before = os.getloadavg()[0]
                began = time.perf_counter()
                run, open_count = asyncio.run(drift_pass(ports["dg"], incremental))
                wall = time.perf_counter() - began
                after = sim_stats(sim_url)
                figures[label] = wall
                print(
                    f"{label} pass: {wall:.1f}s wall, {run.stripe_requests} Stripe requests by"
                    f" drift ({after['requests'] - before['requests']} reached the simulator,"
                    f" rate-limited {after['rate_limited']} so far), {run.subscriptions_checked}"
                    f" subscriptions checked, {open_count} open discrepancies"
                    f" (status {run.status}); load average {load_before:.1f} before,"
                    f" {os.getloadavg()[0]:.1f} after"
                )
                print(
                    f"{label} pass CPU seconds: "
                    + ", ".join(
                        f"{name} {cpu_seconds(child.pid) - cpu[name]:.1f}"
                        for name, child in children.items()
                    )
                )
                if label == "first":
                    reached(FILLED)
            sample = subscription_sample(sim_url, args.naive_sample)
            rate = naive_rate(sim_url, sample)
            # The naive pass can never beat the limit: N / rps is its best case (the issue's
            # "1,000 s" for 100,000 at 100/s); a sequential client measured here is slower.
            naive = subs / min(rate, args.rps)
            print(
                f"naive: {rate:.1f} retrieves/s measured sequentially on {len(sample)}"
                f" subscriptions; best case at the limit {subs / args.rps:.0f}s, at the"
                f" measured rate {subs / rate:.0f}s for {subs} (scaled, not measured end to end)"
            )
            best = subs / args.rps
            print(
                f"ratio naive(at the limit)/full pass: {best / figures['full']:.1f}x;"
                + (f" /first pass: {best / figures['first']:.1f}x;" if "first" in figures else "")
                + f" /incremental: {best / figures['incremental']:.1f}x"
                f" (naive at the measured rate: {naive / figures['full']:.1f}x the full pass)"
            )
            peaks = {name: peak_rss_mb(child.pid) for name, child in children.items()}
            peaks["bench"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print("peak RSS MB: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
    finally:
        for child in children.values():
            child.terminate()
        for child in children.values():
            child.wait()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
